"""normkit's functions against NumPy / scikit-learn / float64 formulas, on the host and (where present) the device."""
import numpy as np
import pytest

import normkit
from conftest import get, put

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "uint8"])
@pytest.mark.parametrize("shape,axis", [((301, 7), 0), ((301, 7), 1), ((5, 33, 9), (0, 2)), ((1000,), None), ((4, 6, 7, 3), (0, 1, 2))])
def test_stats_match_numpy(space, dtype, shape, axis):
    x = (RNG.normal(10, 3, size=shape) if dtype != "uint8" else RNG.integers(0, 256, size=shape)).astype(dtype)
    got = normkit.stats(put(x, space), axis=axis, stats=("count", "mean", "var", "std", "min", "max", "sum"), ddof=1)
    ref = x.astype(np.float64)
    rtol = 1e-6 if dtype != "float64" else 1e-12
    np.testing.assert_allclose(get(got["mean"]), ref.mean(axis=axis), rtol=rtol)
    np.testing.assert_allclose(get(got["var"]), ref.var(axis=axis, ddof=1), rtol=10 * rtol)
    np.testing.assert_allclose(get(got["std"]), ref.std(axis=axis, ddof=1), rtol=10 * rtol)
    np.testing.assert_array_equal(get(got["min"]), ref.min(axis=axis).astype(get(got["min"]).dtype))
    np.testing.assert_array_equal(get(got["max"]), ref.max(axis=axis).astype(get(got["max"]).dtype))
    np.testing.assert_array_equal(get(got["count"]), np.full(np.shape(ref.mean(axis=axis)), ref.size // max(1, ref.mean(axis=axis).size)))
    assert get(got["count"]).dtype == np.int64
    assert get(got["mean"]).dtype == (np.float64 if dtype == "float64" else np.float32)


def test_stats_nan_rules(space):
    x = np.array([[1.0, np.nan], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)
    got = normkit.stats(put(x, space), axis=0, stats=("mean", "count"))
    assert np.isnan(get(got["mean"])[1])
    got = normkit.stats(put(x, space), axis=0, stats=("mean", "count"), ignore_nan=True)
    np.testing.assert_allclose(get(got["mean"]), [3.0, 5.0])
    np.testing.assert_array_equal(get(got["count"]), [3, 2])


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_normalize_matches_sklearn(space, norm):
    from sklearn.preprocessing import normalize as sk_normalize
    x = RNG.normal(size=(50, 13)).astype(np.float32)
    x[3] = 0  # a zero row stays zero
    got = get(normkit.normalize(put(x, space), norm=norm))
    np.testing.assert_allclose(got, sk_normalize(x.astype(np.float64), norm=norm), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("dtype,out_dtype,tol", [("uint8", "float32", 2 ** -22), ("uint8", "float16", 2 ** -9), ("float32", "float32", 2 ** -22)])
@pytest.mark.parametrize("layout,out_layout", [("nhwc", "nchw"), ("nchw", "nhwc"), ("nhwc", "nhwc")])
def test_image_normalize_matches_the_formula(space, dtype, out_dtype, tol, layout, out_layout):
    nhwc = RNG.integers(0, 256, size=(3, 9, 16, 3)).astype(dtype)
    x = nhwc if layout == "nhwc" else np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    units = "unit" if dtype == "uint8" else "pixel"
    u = 1 / 255 if dtype == "uint8" else 1.0
    if dtype != "uint8":
        mean, std = [m * 255 for m in mean], [s * 255 for s in std]
    crop = (1, 2, 7, 12)
    y = get(normkit.image_normalize(put(x, space), mean, std, units=units, layout=layout, out_layout=out_layout, dtype=out_dtype, crop=crop,
                                    mirror=True, reverse_channels=True))
    src = nhwc[:, 1:8, 2:14, ::-1][:, :, ::-1, :].astype(np.float64)  # crop, channels reversed, mirrored
    ref = (u * src - np.array(mean)) / np.array(std)
    ref = ref if out_layout == "nhwc" else ref.transpose(0, 3, 1, 2)
    assert y.dtype == np.dtype(out_dtype)
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=0, atol=2 * tol * max(1.0, np.abs(ref).max()))


def test_image_normalize_mirror_flags_per_image(space):
    x = RNG.integers(0, 256, size=(3, 4, 8, 1)).astype(np.uint8)
    flags = np.array([1, 0, 1], dtype=np.uint8)
    y = get(normkit.image_normalize(put(x, space), [0.0], [1.0], units="pixel", mirror=put(flags, space)))
    ref = x[:, :, :, 0].astype(np.float64)
    ref[flags == 1] = ref[flags == 1][:, :, ::-1]
    np.testing.assert_array_equal(y[:, 0], ref)


@pytest.mark.parametrize("rms", [False, True])
def test_row_norms(space, rms):
    x = RNG.normal(2, 3, size=(37, 96)).astype(np.float32)
    w = RNG.normal(size=96).astype(np.float32)
    if rms:
        y = get(normkit.rms_norm(put(x, space), put(w, space), eps=1e-6))
        ref = x / np.sqrt((x.astype(np.float64) ** 2).mean(1, keepdims=True) + 1e-6) * w
    else:
        y = get(normkit.layer_norm(put(x, space), put(w, space), eps=1e-5))
        xd = x.astype(np.float64)
        ref = (xd - xd.mean(1, keepdims=True)) / np.sqrt(xd.var(1, keepdims=True) + 1e-5) * w
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_bad_arrays_raise_the_documented_exceptions(space):
    x = RNG.normal(size=(8, 6)).astype(np.float32)
    with pytest.raises(ValueError, match="'x'.*C-contiguous"):
        normkit.stats(x[:, ::2])
    with pytest.raises(TypeError):
        normkit.stats(x.astype(np.int32))
    with pytest.raises(ValueError, match="axis"):
        normkit.stats(put(x, space), axis=2)
    with pytest.raises(ValueError, match="units"):
        normkit.image_normalize(put(RNG.integers(0, 256, size=(1, 2, 2, 3)).astype(np.uint8), space), [0.5] * 3, [0.2] * 3)
    with pytest.raises(ValueError, match="norm"):
        normkit.normalize(put(x, space), norm="l3")
    if space == "device":
        with pytest.raises(ValueError, match="'weight'"):
            normkit.layer_norm(put(x, space), np.ones(6, np.float32))  # weight on the host, x on the device


def test_image_normalize_crop_to_the_edge_and_flag_lists():
    x = RNG.integers(0, 256, size=(2, 5, 6, 3)).astype(np.uint8)
    y = normkit.image_normalize(x, [0.0] * 3, [1.0] * 3, units="pixel", crop=(1, 2, -1, -1), out_layout="nhwc")
    np.testing.assert_array_equal(y, x[:, 1:, 2:].astype(np.float32))
    y = normkit.image_normalize(x, [0.0] * 3, [1.0] * 3, units="pixel", mirror=[1, 0], out_layout="nhwc")
    np.testing.assert_array_equal(y[0], x[0, :, ::-1].astype(np.float32))
    np.testing.assert_array_equal(y[1], x[1].astype(np.float32))
    y = normkit.image_normalize(x, [0.0] * 3, [1.0] * 3, units="pixel", mirror=np.bool_(True), out_layout="nhwc")
    np.testing.assert_array_equal(y, x[:, :, ::-1].astype(np.float32))
    with pytest.raises(TypeError, match="mirror"):
        normkit.image_normalize(x, [0.0] * 3, [1.0] * 3, units="pixel", mirror=np.zeros(2, np.float32))


def test_image_normalize_float16_infinities_and_cancellation(space):
    # 16-bit input to float32 output (the split float32 formula where |B| <= 256, float64 beyond)
    x = np.array([np.inf, -np.inf, 1.0, 0.5], dtype=np.float16).reshape(1, 1, 4, 1)
    y = get(normkit.image_normalize(put(x, space), [0.0], [1.0], units="pixel"))
    np.testing.assert_array_equal(y.ravel(), [np.inf, -np.inf, 1.0, 0.5])
    x = np.array([60000.0, 59968.0, 60032.0], dtype=np.float16).reshape(1, 1, 3, 1)
    y = get(normkit.image_normalize(put(x, space), [60000.1], [0.229], units="pixel")).ravel().astype(np.float64)
    ref = (x.ravel().astype(np.float64) - 60000.1) / 0.229
    np.testing.assert_allclose(y, ref, rtol=0, atol=2 * 2 ** -23 * np.maximum(1, np.abs(ref)).max())
    x = np.array([0.25, 1.5, -3.0], dtype=np.float16).reshape(1, 1, 3, 1)
    y = get(normkit.image_normalize(put(x, space), [0.485], [0.229], units="pixel", scale=64.0, shift=128.0)).ravel().astype(np.float64)
    ref = (x.ravel().astype(np.float64) - 0.485) / 0.229 * 64 + 128
    np.testing.assert_allclose(y, ref, rtol=0, atol=2 * 2 ** -23 * np.abs(ref).max())


def _row_norm_reference(x, w, b, eps, rms, dy):
    """float64 LayerNorm/RMSNorm over the last axis and its gradients (dx, dweight, dbias)."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    mean = 0.0 if rms else x.mean(1, keepdims=True)
    rstd = 1 / np.sqrt(((x - mean) ** 2).mean(1, keepdims=True) + eps)
    xhat = (x - mean) * rstd
    g = dy * w
    dx = rstd * (g - (0.0 if rms else g.mean(1, keepdims=True)) - xhat * (g * xhat).mean(1, keepdims=True))
    return xhat * w + b, dx, (dy * xhat).sum(0), dy.sum(0)


@pytest.mark.parametrize("rms", [False, True])
def test_row_norm_backward(space, rms):
    x = RNG.normal(1, 2, size=(45, 40)).astype(np.float32)
    w, b = RNG.normal(size=40).astype(np.float32), (np.zeros(40) if rms else RNG.normal(size=40)).astype(np.float32)
    dy = RNG.normal(size=x.shape).astype(np.float32)
    y_ref, dx_ref, dw_ref, db_ref = _row_norm_reference(x, w, b, 1e-5, rms, dy)
    if rms:
        y, rstd = normkit.rms_norm(put(x, space), put(w, space), eps=1e-5, return_stats=True)
        dx, dw = normkit.rms_norm_backward(put(dy, space), put(x, space), rstd, put(w, space), eps=1e-5)
    else:
        y, mean, rstd = normkit.layer_norm(put(x, space), put(w, space), put(b, space), eps=1e-5, return_stats=True)
        assert get(mean).shape == (45,)
        dx, dw, db = normkit.layer_norm_backward(put(dy, space), put(x, space), mean, rstd, put(w, space), with_bias=True, eps=1e-5)
        np.testing.assert_allclose(get(db), db_ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(get(y), y_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(get(dx), dx_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(get(dw), dw_ref, rtol=1e-5, atol=1e-4)
    # normalized over the last two axes: the same as over one axis of their product
    y2 = normkit.layer_norm(put(x.reshape(45, 8, 5), space), put(w.reshape(8, 5), space), eps=1e-5, normalized_ndim=2)
    np.testing.assert_allclose(get(y2).reshape(45, 40), _row_norm_reference(x, w, 0, 1e-5, False, dy)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channel_axis", [1, -1])
def test_batch_norm_training_inference_and_backward(space, channel_axis):
    shape = (6, 5, 7, 3) if channel_axis == 1 else (6, 7, 3, 5)
    x = RNG.normal(3, 2, size=shape).astype(np.float32)
    dy = RNG.normal(size=shape).astype(np.float32)
    w, b = RNG.normal(size=5).astype(np.float32), RNG.normal(size=5).astype(np.float32)
    rm, rv = np.zeros(5, np.float32), np.ones(5, np.float32)
    axes = tuple(a for a in range(4) if a != channel_axis % 4)
    keep = [1] * 4
    keep[channel_axis] = 5
    running_mean, running_var = put(rm, space), put(rv, space)
    y, mean, rstd = normkit.batch_norm(put(x, space), running_mean, running_var, put(w, space), put(b, space), training=True, momentum=0.1,
                                       eps=1e-5, channel_axis=channel_axis, return_stats=True)
    xd, dyd = x.astype(np.float64), dy.astype(np.float64)
    n = x.size // 5
    m, v = xd.mean(axes), xd.var(axes)
    r = 1 / np.sqrt(v + 1e-5)
    xhat = (xd - m.reshape(keep)) * r.reshape(keep)
    np.testing.assert_allclose(get(y), xhat * w.reshape(keep) + b.reshape(keep), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(get(running_mean), 0.1 * m, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(get(running_var), 0.9 + 0.1 * v * n / (n - 1), rtol=1e-6)
    dx, dw, db = normkit.batch_norm_backward(put(dy, space), put(x, space), mean, rstd, put(w, space), with_bias=True, eps=1e-5,
                                             channel_axis=channel_axis)
    sdy, sdyx = dyd.sum(axes), (dyd * (xd - m.reshape(keep))).sum(axes)
    dx_ref = (dyd - (sdy / n).reshape(keep) - (xd - m.reshape(keep)) * (r ** 2 * sdyx / n).reshape(keep)) * (r * w).reshape(keep)
    np.testing.assert_allclose(get(dx), dx_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(get(dw), sdyx * r, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(get(db), sdy, rtol=1e-5, atol=1e-4)
    # inference from the running statistics, and its backward (an affine map a channel)
    y = normkit.batch_norm(put(x, space), running_mean, running_var, put(w, space), None, training=False, eps=1e-5, channel_axis=channel_axis)
    rm2, rv2 = get(running_mean).astype(np.float64), get(running_var).astype(np.float64)
    scale = w / np.sqrt(rv2 + 1e-5)
    np.testing.assert_allclose(get(y), (xd - rm2.reshape(keep)) * scale.reshape(keep), rtol=1e-5, atol=1e-5)
    dx, dw, _ = normkit.batch_norm_backward(put(dy, space), put(x, space), running_mean, running_var, put(w, space), training=False, eps=1e-5,
                                            channel_axis=channel_axis)
    np.testing.assert_allclose(get(dx), dyd * scale.reshape(keep), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(get(dw), (dyd * (xd - rm2.reshape(keep))).sum(axes) / np.sqrt(rv2 + 1e-5), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="running_mean"):
        normkit.batch_norm(put(x, space), training=False)
    with pytest.raises(ValueError, match="channel_axis"):
        normkit.batch_norm(put(x, space), training=True, channel_axis=2)


@pytest.mark.parametrize("groups", [1, 2, 0])
def test_group_norm_and_backward(space, groups):
    x = RNG.normal(-1, 3, size=(3, 4, 5, 6)).astype(np.float32)
    dy = RNG.normal(size=x.shape).astype(np.float32)
    w, b = RNG.normal(size=4).astype(np.float32), RNG.normal(size=4).astype(np.float32)
    y, mean, rstd = normkit.group_norm(put(x, space), groups, put(w, space), put(b, space), eps=1e-5, return_stats=True)
    g = groups or 4
    xd, dyd = x.astype(np.float64).reshape(3, g, -1), dy.astype(np.float64).reshape(3, g, -1)
    m, r = xd.mean(2, keepdims=True), 1 / np.sqrt(xd.var(2, keepdims=True) + 1e-5)
    xhat = ((xd - m) * r).reshape(x.shape)
    wk, bk = w.reshape(1, 4, 1, 1), b.reshape(1, 4, 1, 1)
    np.testing.assert_allclose(get(y), xhat * wk + bk, rtol=1e-5, atol=1e-5)
    assert get(mean).shape == (3, g)
    dx, dw, db = normkit.group_norm_backward(put(dy, space), put(x, space), mean, rstd, groups, put(w, space), with_bias=True, eps=1e-5)
    gd = (dy.astype(np.float64) * wk).reshape(3, g, -1)  # the gradient of xhat
    xh = xhat.reshape(3, g, -1)
    dx_ref = r * (gd - gd.mean(2, keepdims=True) - xh * (gd * xh).mean(2, keepdims=True))
    np.testing.assert_allclose(get(dx), dx_ref.reshape(x.shape), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(get(dw), (dy * xhat).sum((0, 2, 3)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(get(db), dy.astype(np.float64).sum((0, 2, 3)), rtol=1e-5, atol=1e-4)


class _InterfaceOnly:
    """A device array that speaks only __cuda_array_interface__ (as Numba's do), over a normkit DeviceArray."""

    def __init__(self, array, typestr):
        self.array = array
        self.__cuda_array_interface__ = {"shape": array.shape, "typestr": typestr, "data": (array.data_ptr, False), "version": 3,
                                         "strides": None, "stream": None}


def test_cuda_array_interface_inputs_and_outputs(space):
    if space != "device":
        pytest.skip("__cuda_array_interface__ describes device memory")
    x = RNG.normal(5, 2, size=(40, 6)).astype(np.float32)
    got = normkit.stats(_InterfaceOnly(normkit.device_array(x), "<f4"), axis=0, stats=("mean", "max"))
    np.testing.assert_allclose(get(got["mean"]), x.mean(0), rtol=1e-6)
    out = normkit.device_array(np.zeros_like(x))
    normkit.normalize(_InterfaceOnly(normkit.device_array(x), "<f4"), out=_InterfaceOnly(out, "<f4"))
    np.testing.assert_allclose(get(out), x / np.linalg.norm(x, axis=1, keepdims=True), rtol=2e-6)
    scaler = normkit.StandardScaler().fit(_InterfaceOnly(normkit.device_array(x), "<f4"))
    np.testing.assert_allclose(scaler.mean_, x.mean(0), rtol=1e-6)
    with pytest.raises(TypeError, match="typestr"):
        normkit.stats(_InterfaceOnly(normkit.device_array(x), "<i4"))
    with pytest.raises(ValueError, match="not CUDA device memory"):
        normkit.stats(_HostPointer())


class _HostPointer:
    """__cuda_array_interface__ pointing at host memory (rejected)."""

    def __init__(self):
        self.host = np.zeros(4, np.float32)
        self.__cuda_array_interface__ = {"shape": (4,), "typestr": "<f4", "data": (self.host.ctypes.data, False), "version": 3}


def test_image_normalize_per_image_crop_origins(space):
    x = RNG.integers(0, 256, size=(3, 6, 9, 3)).astype(np.uint8)
    origins = np.array([[0, 0], [2, 5], [-1, 40]], dtype=np.int64)  # the last clamps to (0, 9 - 4)
    y = get(normkit.image_normalize(put(x, space), [0.0] * 3, [1.0] * 3, units="pixel", crop=(4, 4), crop_origins=put(origins, space),
                                    out_layout="nhwc"))
    want = np.stack([x[0, 0:4, 0:4], x[1, 2:6, 5:9], x[2, 0:4, 5:9]]).astype(np.float32)
    np.testing.assert_array_equal(y, want)


def test_batch_norm_cumulative_average_needs_the_batch_count():
    x = RNG.normal(size=(8, 3)).astype(np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="batches_tracked"):
        normkit.batch_norm(x, rm, rv, training=True, momentum=None)
    normkit.batch_norm(x, rm, rv, training=True, momentum=None, batches_tracked=1)  # the first batch: its own statistics
    np.testing.assert_allclose(rm, x.astype(np.float64).mean(0), rtol=1e-6, atol=1e-7)
