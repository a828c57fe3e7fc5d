"""normkit's functions on arrays of any library (NumPy on the host; PyTorch, CuPy or any DLPack array on a CUDA
device), without copies. Outputs are new arrays in the input's library, or `out=`. Device calls are enqueued on
`stream` (None: the producer's current stream) and do not synchronize unless a docstring says so."""
from __future__ import annotations

from . import _arrays, _normkit

ALL_STATS = ("count", "mean", "var", "std", "min", "max", "sum", "l0", "l1", "l2", "linf")


@_arrays.accepting
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


@_arrays.accepting
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


@_arrays.accepting
def image_normalize(x, mean, std, units=None, layout="nhwc", out_layout="nchw", dtype="float32", eps=0.0, scale=1.0, shift=0.0,
                    reverse_channels=False, crop=None, mirror=False, crop_origins=None, out=None, stream=None):
    """A batch of images normalized in one pass, the layout change fused:
    y[n, c, i, j] = (u * x[n, crop_y + i, crop_x + j', c'] - mean[c]) * scale / sqrt(std[c]^2 + eps) + shift,
    j' = w - 1 - j for mirrored images, c' = C - 1 - c with reverse_channels (mean and std by output channel).
    `units`: 'unit' (uint8 divided by 255 first, u = 1/255: torchvision's 0.485) or 'pixel' (the input's values:
    DALI's 123.675); required for uint8 input, never guessed. `mirror`: a bool for every image, or a uint8 array of
    one flag per image in x's memory. `crop`: (y, x, h, w). `crop_origins`: a window of its own for every image
    (random crops): an int64 [N, 2] array of (row, column) in x's memory, with crop = (h, w) the windows' size;
    origins are clamped into the image. x: [N, H, W, C] ('nhwc') or [N, C, H, W] ('nchw');
    a PyTorch channels_last tensor is NHWC: pass x.permute(0, 2, 3, 1). Output: float32, float16 or bfloat16."""
    shape = tuple(x.shape)
    if len(shape) != 4:
        raise ValueError(f"normkit.image_normalize: argument 'x': expected 4 dimensions, got {len(shape)}")
    n, c, h, w = (shape[0], shape[3], shape[1], shape[2]) if layout == "nhwc" else shape
    if crop_origins is not None and crop is not None and len(crop) == 2:
        crop = (0, 0) + tuple(crop)
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
    _arrays.check_same_device([("x", x), ("out", out), ("mirror", flags), ("crop_origins", crop_origins)])
    _normkit.image_normalize(x, out, layout, out_layout, units or "", [float(v) for v in mean], [float(v) for v in std], float(eps),
                             float(scale), float(shift), bool(reverse_channels), [int(v) for v in crop] if crop is not None else [],
                             bool(mirror), flags, crop_origins, 0, _arrays.stream_handle(stream, x))
    return out


def _rows(x, normalized_ndim, op):
    shape = tuple(x.shape)
    if not 1 <= int(normalized_ndim) <= len(shape):
        raise ValueError(f"normkit.{op}: argument 'normalized_ndim': expected 1..{len(shape)} (x has {len(shape)} dimensions), got {normalized_ndim}")
    rows = 1
    for e in shape[:len(shape) - int(normalized_ndim)]:
        rows *= int(e)
    return rows


def _row_norm(x, weight, bias, eps, rms, normalized_ndim, return_stats, out, stream):
    op = "rms_norm" if rms else "layer_norm"
    rows = _rows(x, normalized_ndim, op)
    if out is None:
        out = _arrays.empty_like_library(x, tuple(x.shape), _arrays.dtype_name(x))
    mean = None if rms or not return_stats else _arrays.empty_like_library(x, (rows,), "float32")
    rstd = _arrays.empty_like_library(x, (rows,), "float32") if return_stats else None
    _arrays.check_same_device([("x", x), ("weight", weight), ("bias", bias), ("out", out)])
    _normkit.layer_norm_forward(x, weight, bias, out, mean, rstd, float(eps), rms, int(normalized_ndim), _arrays.stream_handle(stream, x))
    if return_stats:
        return (out, rstd) if rms else (out, mean, rstd)
    return out


@_arrays.accepting
def layer_norm(x, weight=None, bias=None, eps=1e-5, normalized_ndim=1, return_stats=False, out=None, stream=None):
    """LayerNorm over the last `normalized_ndim` axes (PyTorch's F.layer_norm(x, x.shape[-normalized_ndim:], weight,
    bias, eps)): y = (x - mean) * rstd * weight + bias, rstd = 1 / sqrt(var + eps), biased variance, statistics in
    float32. x float32, float16 or bfloat16; weight/bias (the normalized shape) float32 or x's dtype, optional.
    return_stats: also the per-row mean and rstd (float32, one per row: [R]) that layer_norm_backward takes. A row
    holding NaN or Inf gives a NaN row; a constant row gives y = bias. PyTorch's default eps is 1e-5, Keras's 1e-3.
    Deterministic: the same bits on every run, GPU model and batch size (include/normkit/layer_norm.hpp)."""
    return _row_norm(x, weight, bias, eps, False, normalized_ndim, return_stats, out, stream)


@_arrays.accepting
def rms_norm(x, weight=None, eps=1e-6, normalized_ndim=1, return_stats=False, out=None, stream=None):
    """RMSNorm over the last `normalized_ndim` axes: y = x * rsqrt(mean(x^2) + eps) * weight (statistics in float32).
    return_stats: also the per-row rstd ([R], float32) that rms_norm_backward takes. PyTorch's F.rms_norm(eps=None)
    uses finfo(x.dtype).eps: pass it explicitly."""
    return _row_norm(x, weight, None, eps, True, normalized_ndim, return_stats, out, stream)


def _output_if(x, shape, dtype, wanted):
    return _arrays.empty_like_library(x, shape, dtype) if wanted else None


def _row_norm_backward(dy, x, mean, rstd, weight, with_bias, eps, rms, normalized_ndim, input_grad, stream):
    op = "rms_norm_backward" if rms else "layer_norm_backward"
    _rows(x, normalized_ndim, op)
    normalized = tuple(x.shape)[len(x.shape) - int(normalized_ndim):]
    param_dtype = _arrays.dtype_name(weight) if weight is not None else "float32"
    dx = _output_if(x, tuple(x.shape), _arrays.dtype_name(x), input_grad)
    dweight = _output_if(x, normalized, param_dtype, weight is not None)
    dbias = _output_if(x, normalized, param_dtype, with_bias)
    _arrays.check_same_device([("x", x), ("dy", dy), ("mean", mean), ("rstd", rstd), ("weight", weight)])
    _normkit.layer_norm_backward(dy, x, mean, rstd, weight, dx, dweight, dbias, float(eps), rms, int(normalized_ndim), _arrays.stream_handle(stream, x))
    return dx, dweight, dbias


@_arrays.accepting
def layer_norm_backward(dy, x, mean, rstd, weight=None, with_bias=False, eps=1e-5, normalized_ndim=1, input_grad=True, stream=None):
    """The gradients of layer_norm from dy and the forward's saved mean and rstd (return_stats=True):
    g = weight * dy, dx = rstd * (g - mean(g) - x̂ * mean(g * x̂)), dweight = Σ_rows dy * x̂, dbias = Σ_rows dy.
    Returns (dx, dweight, dbias): dweight when weight is given (in weight's dtype), dbias when with_bias, dx unless
    input_grad=False; None for the others. Deterministic (fixed summation order, no atomics)."""
    return _row_norm_backward(dy, x, mean, rstd, weight, with_bias, eps, False, normalized_ndim, input_grad, stream)


@_arrays.accepting
def rms_norm_backward(dy, x, rstd, weight=None, eps=1e-6, normalized_ndim=1, input_grad=True, stream=None):
    """The gradients of rms_norm from dy and the forward's saved rstd: g = weight * dy,
    dx = rstd * (g - x̂ * mean(g * x̂)), dweight = Σ_rows dy * x̂. Returns (dx, dweight) (None where not computed)."""
    dx, dweight, _ = _row_norm_backward(dy, x, None, rstd, weight, False, eps, True, normalized_ndim, input_grad, stream)
    return dx, dweight


def _channels_last(x, channel_axis, op):
    ndim = len(x.shape)
    if ndim < 2:
        raise ValueError(f"normkit.{op}: argument 'x': expected at least 2 dimensions, got {ndim}")
    axis = int(channel_axis) % ndim if -ndim <= int(channel_axis) < ndim else None
    if axis == 1:
        return False  # (an [N, C] x is both: channels first)
    if axis == ndim - 1:
        return True
    raise ValueError(f"normkit.{op}: argument 'channel_axis': expected 1 (channels first) or -1 (channels last), got {channel_axis}")


def _channel_grads(x, channel_axis, op, weight, with_bias, input_grad):
    """BatchNorm's and GroupNorm's backward outputs: (channels_last, dx, dweight, dbias), each None when not asked
    (dweight needs weight, dbias with_bias); parameter gradients float32, C values."""
    channels_last = _channels_last(x, channel_axis, op)
    channels = int(x.shape[-1 if channels_last else 1])
    return (channels_last, _output_if(x, tuple(x.shape), _arrays.dtype_name(x), input_grad),
            _output_if(x, (channels,), "float32", weight is not None), _output_if(x, (channels,), "float32", with_bias))


@_arrays.accepting
def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5, channel_axis=1,
               convention="pytorch", batches_tracked=None, return_stats=False, out=None, stream=None):
    """BatchNorm (PyTorch's F.batch_norm argument order): per channel (axis `channel_axis`: 1, or -1 for NHWC / Keras),
    statistics over every other axis. training: y = (x - mean) * rstd * weight + bias with the batch's biased
    variance, rstd = 1 / sqrt(var + eps), and running_mean/running_var (float32, updated IN PLACE when given) by
    `convention`: 'pytorch' (momentum weighs the batch, 0.1; unbiased running variance; momentum=None with
    batches_tracked = PyTorch's num_batches_tracked after its increment: the cumulative average) or 'keras'
    (momentum weighs the running value, 0.99; biased). Not training: y from the running statistics (required, as
    PyTorch). weight, bias, running statistics: float32, C values. return_stats (training): also the saved mean and
    rstd (float32, C) that batch_norm_backward takes. Errors: one value per channel in training, as PyTorch."""
    channels_last = _channels_last(x, channel_axis, "batch_norm")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("normkit.batch_norm: arguments 'running_mean' and 'running_var' are required when not training (as PyTorch)")
    if out is None:
        out = _arrays.empty_like_library(x, tuple(x.shape), _arrays.dtype_name(x))
    channels = int(x.shape[-1 if channels_last else 1])
    saved_mean = _output_if(x, (channels,), "float32", training and return_stats)
    saved_rstd = _output_if(x, (channels,), "float32", training and return_stats)
    cumulative = momentum is None
    if cumulative and training and running_mean is not None and batches_tracked is None:
        raise ValueError("normkit.batch_norm: argument 'batches_tracked': required with momentum=None (the cumulative average's count of "
                         "batches, PyTorch's num_batches_tracked after its increment)")
    _arrays.check_same_device([("x", x), ("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias), ("out", out)])
    _normkit.batch_norm_forward(x, weight, bias, out, running_mean, running_var, saved_mean, saved_rstd, bool(training), channels_last, float(eps),
                                0.0 if cumulative else float(momentum), convention, cumulative, int(batches_tracked or 1),
                                _arrays.stream_handle(stream, x))
    return (out, saved_mean, saved_rstd) if training and return_stats else out


@_arrays.accepting
def batch_norm_backward(dy, x, mean, rstd_or_var, weight=None, with_bias=False, training=True, eps=1e-5, channel_axis=1, input_grad=True,
                        stream=None):
    """The gradients of batch_norm. training=True: from the forward's saved mean and rstd,
    dx = (dy - Σdy / n - (x - mean) * rstd² * Σdy(x - mean) / n) * rstd * weight; training=False: from the
    running mean and var (an affine map per channel: dx = dy * weight / sqrt(var + eps)). dweight =
    Σ dy * (x - mean) * rstd, dbias = Σ dy (float32). Returns (dx, dweight, dbias), None where not asked
    (dweight needs weight, dbias with_bias). Deterministic: a summation order fixed by x's shape."""
    channels_last, dx, dweight, dbias = _channel_grads(x, channel_axis, "batch_norm_backward", weight, with_bias, input_grad)
    _arrays.check_same_device([("x", x), ("dy", dy), ("mean", mean), ("rstd_or_var", rstd_or_var), ("weight", weight)])
    _normkit.batch_norm_backward(dy, x, mean, rstd_or_var, weight, dx, dweight, dbias, bool(training), channels_last, float(eps),
                                 _arrays.stream_handle(stream, x))
    return dx, dweight, dbias


@_arrays.accepting
def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, channel_axis=1, return_stats=False, out=None, stream=None):
    """GroupNorm (PyTorch's F.group_norm(x, num_groups, weight, bias, eps)): the C channels (axis 1, or -1 for NHWC /
    Keras) cut into num_groups groups of C / num_groups; each (sample, group) normalized over its channels' values
    with its own mean and biased variance, y = (x - mean) * rstd * weight[c] + bias[c]. num_groups = 0: one group a
    channel (InstanceNorm). return_stats: also the saved mean and rstd ([N, G] float32) for group_norm_backward.
    Differs from PyTorch in one edge: a constant group with eps = 0 gives y = bias (rstd 0), not NaN."""
    channels_last = _channels_last(x, channel_axis, "group_norm")
    if out is None:
        out = _arrays.empty_like_library(x, tuple(x.shape), _arrays.dtype_name(x))
    groups = int(num_groups) or int(x.shape[-1 if channels_last else 1])
    saved_mean = _output_if(x, (int(x.shape[0]), groups), "float32", return_stats)
    saved_rstd = _output_if(x, (int(x.shape[0]), groups), "float32", return_stats)
    _arrays.check_same_device([("x", x), ("weight", weight), ("bias", bias), ("out", out)])
    _normkit.group_norm_forward(x, weight, bias, out, saved_mean, saved_rstd, int(num_groups), channels_last, float(eps), _arrays.stream_handle(stream, x))
    return (out, saved_mean, saved_rstd) if return_stats else out


@_arrays.accepting
def group_norm_backward(dy, x, mean, rstd, num_groups, weight=None, with_bias=False, eps=1e-5, channel_axis=1, input_grad=True, stream=None):
    """The gradients of group_norm from dy and the forward's saved mean and rstd ([N, G]): returns (dx, dweight,
    dbias), float32 parameter gradients, None where not asked (dweight needs weight, dbias with_bias)."""
    channels_last, dx, dweight, dbias = _channel_grads(x, channel_axis, "group_norm_backward", weight, with_bias, input_grad)
    _arrays.check_same_device([("x", x), ("dy", dy), ("mean", mean), ("rstd", rstd), ("weight", weight)])
    _normkit.group_norm_backward(dy, x, mean, rstd, weight, dx, dweight, dbias, int(num_groups), channels_last, float(eps),
                                 _arrays.stream_handle(stream, x))
    return dx, dweight, dbias
