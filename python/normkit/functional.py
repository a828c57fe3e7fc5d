"""normkit's functions on arrays of any library (NumPy on the host; PyTorch, CuPy or any DLPack array on a CUDA
device), without copies. Outputs are new arrays in the input's library, or `out=`. Device calls are enqueued on
`stream` (None: the producer's current stream) and do not synchronize unless a docstring says so."""
from __future__ import annotations

from . import _arrays, _normkit

ALL_STATS = ("count", "mean", "var", "std", "min", "max", "sum", "l0", "l1", "l2", "linf")


def stats(x, axis=None, stats=("count", "mean", "var", "std", "min", "max", "sum"), ddof=0, ignore_nan=False, stream=None):
    """Statistics of x over the reduced `axis` (None: all; an int or a sequence, negative from the end), in one read:
    count, mean, var (= M2 / (count - ddof)), std, min, max, sum and the norms l0, l1, l2, linf. NaN propagates as in
    NumPy unless ignore_nan (NumPy's nan-functions). Returns {name: array of the kept shape}: int64 for count and l0,
    float64 for float64 input, float32 otherwise (accumulated in float64 where normkit's engine chooses it; see
    include/normkit/stats.hpp for the accuracy). Device input: device outputs, no synchronization."""
    names = [stats] if isinstance(stats, str) else list(stats)
    ndim = len(x.shape)
    axes = _arrays.normalize_axes(axis, ndim)
    kept = _arrays.reduced_shape(tuple(x.shape), axes)
    float_out = "float64" if _arrays.dtype_name(x) == "float64" else "float32"
    outs = [_arrays.empty_like_library(x, kept, "int64" if n in ("count", "l0") else float_out) for n in names]
    _normkit.stats(x, axes or [], axes is None, names, outs, int(ddof), bool(ignore_nan), _arrays.stream_handle(stream, x))
    return dict(zip(names, outs))


def normalize(x, norm="l2", out=None, stream=None):
    """Each row (the last axis) divided by its norm: 'l1' (sum |x|), 'l2' (Euclidean) or 'max' (max |x|; 'linf' too),
    scikit-learn's `normalize(X, norm=...)`. A zero row stays zero (scikit-learn's rule); NaN propagates to its row.
    Output dtype: x's float dtype (float32 for uint8) unless `out` is given."""
    if out is None:
        d = _arrays.dtype_name(x)
        out = _arrays.empty_like_library(x, tuple(x.shape), "float32" if d == "uint8" else d)
    _arrays.check_same_device([("x", x), ("out", out)])
    _normkit.lp_normalize(x, norm, out, _arrays.stream_handle(stream, x))
    return out


def image_normalize(x, mean, std, units=None, layout="nhwc", out_layout="nchw", dtype="float32", eps=0.0, scale=1.0, shift=0.0,
                    reverse_channels=False, crop=None, mirror=False, out=None, stream=None):
    """A batch of images normalized in one pass, the layout change fused:
    y[n, c, i, j] = (u * x[n, crop_y + i, crop_x + j', c'] - mean[c]) * scale / sqrt(std[c]^2 + eps) + shift,
    j' = w - 1 - j for mirrored images, c' = C - 1 - c with reverse_channels (mean and std by output channel).
    `units`: 'unit' (uint8 divided by 255 first, u = 1/255: torchvision's 0.485) or 'pixel' (the input's values:
    DALI's 123.675); required for uint8 input, never guessed. `mirror`: a bool for every image, or a uint8 array of
    one flag per image in x's memory. `crop`: (y, x, h, w). x: [N, H, W, C] ('nhwc') or [N, C, H, W] ('nchw');
    a PyTorch channels_last tensor is NHWC: pass x.permute(0, 2, 3, 1). Output: float32, float16 or bfloat16."""
    shape = tuple(x.shape)
    if len(shape) != 4:
        raise ValueError(f"normkit.image_normalize: argument 'x': expected 4 dimensions, got {len(shape)}")
    n, c, h, w = (shape[0], shape[3], shape[1], shape[2]) if layout == "nhwc" else shape
    cy, cx, ch, cw = (int(v) for v in crop) if crop is not None else (0, 0, h, w)
    ch, cw = (h - cy if ch == -1 else ch), (w - cx if cw == -1 else cw)  # (-1: to the edge)
    if out is None:
        out_shape = (n, ch, cw, c) if out_layout == "nhwc" else (n, c, ch, cw)
        out = _arrays.empty_like_library(x, out_shape, dtype)
    flags = None
    if hasattr(mirror, "__dlpack__") or (hasattr(mirror, "shape") and len(getattr(mirror, "shape", ())) > 0):
        flags, mirror = mirror, False  # one flag an image
    elif isinstance(mirror, (list, tuple)):
        if _arrays.device_of(x)[0]:
            raise TypeError("normkit.image_normalize: argument 'mirror': per-image flags of device images must be a device uint8 array")
        import numpy as np
        flags, mirror = np.asarray(mirror, dtype=np.uint8), False
    else:
        mirror = bool(mirror)
    _arrays.check_same_device([("x", x), ("out", out), ("mirror", flags)])
    _normkit.image_normalize(x, out, layout, out_layout, units or "", [float(v) for v in mean], [float(v) for v in std], float(eps),
                             float(scale), float(shift), bool(reverse_channels), [int(v) for v in crop] if crop is not None else [],
                             bool(mirror), flags, 0, _arrays.stream_handle(stream, x))
    return out


def _row_norm(x, weight, bias, eps, rms, return_stats, out, stream):
    if out is None:
        out = _arrays.empty_like_library(x, tuple(x.shape), _arrays.dtype_name(x))
    rows = 1
    for e in x.shape[:-1]:
        rows *= int(e)
    mean = None if rms or not return_stats else _arrays.empty_like_library(x, (rows,), "float32")
    rstd = _arrays.empty_like_library(x, (rows,), "float32") if return_stats else None
    _arrays.check_same_device([("x", x), ("weight", weight), ("bias", bias), ("out", out)])
    _normkit.layer_norm_forward(x, weight, bias, out, mean, rstd, float(eps), rms, _arrays.stream_handle(stream, x))
    if return_stats:
        return (out, rstd) if rms else (out, mean, rstd)
    return out


def layer_norm(x, weight=None, bias=None, eps=1e-5, return_stats=False, out=None, stream=None):
    """LayerNorm over the last axis (PyTorch's F.layer_norm(x, (n,), weight, bias, eps)): y = (x - mean) * rstd * weight
    + bias, rstd = 1 / sqrt(var + eps), biased variance, statistics in float32. x float32, float16 or bfloat16;
    weight/bias float32 or x's dtype, optional. return_stats: also the per-row mean and rstd (float32) the backward
    takes. PyTorch's default eps is 1e-5, Keras's 1e-3."""
    return _row_norm(x, weight, bias, eps, False, return_stats, out, stream)


def rms_norm(x, weight=None, eps=1e-6, return_stats=False, out=None, stream=None):
    """RMSNorm over the last axis: y = x * rsqrt(mean(x^2) + eps) * weight (statistics in float32). PyTorch's
    F.rms_norm(eps=None) uses finfo(x.dtype).eps: pass it explicitly."""
    return _row_norm(x, weight, None, eps, True, return_stats, out, stream)
