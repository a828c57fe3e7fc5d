"""The estimators against scikit-learn on the same data (random, NaN, constant features, large offsets),
partial_fit over batches against one fit, pickling and cloning, the state file shared with the command line,
and Keras's Normalization semantics."""
import os
import pickle
import subprocess

import numpy as np
import pytest
import sklearn.base
import sklearn.preprocessing as skp

import normkit
from conftest import get, put

RNG = np.random.default_rng(11)


def datasets():
    x = RNG.normal(5, 2, size=(400, 6))
    nan = x.copy()
    nan[RNG.random(nan.shape) < 0.1] = np.nan
    constant = x.copy()
    constant[:, 2] = 3.25
    offset = x + 1e6
    return {"random": x, "nan": nan, "constant": constant, "offset": offset}


PAIRS = [(normkit.StandardScaler, skp.StandardScaler, {}), (normkit.StandardScaler, skp.StandardScaler, {"with_mean": False}),
         (normkit.MinMaxScaler, skp.MinMaxScaler, {"feature_range": (-2, 3)}), (normkit.MaxAbsScaler, skp.MaxAbsScaler, {})]
ATTRIBUTES = ["mean_", "var_", "scale_", "n_samples_seen_", "data_min_", "data_max_", "data_range_", "min_", "max_abs_"]


@pytest.mark.parametrize("ours,theirs,params", PAIRS)
@pytest.mark.parametrize("name", ["random", "nan", "constant", "offset"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_estimators_match_sklearn(space, ours, theirs, params, name, dtype):
    x = datasets()[name].astype(dtype)
    a, b = ours(**params).fit(put(x, space)), theirs(**params).fit(x)
    for attr in ATTRIBUTES:
        if hasattr(b, attr):
            want, got = getattr(b, attr), getattr(a, attr)
            if want is None:
                assert got is None, attr
            else:
                np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64), rtol=1e-6, atol=1e-12,
                                           err_msg=attr)
    y = get(a.transform(put(x, space)))
    assert y.dtype == np.dtype(dtype)
    # Far from zero: the two fits' means differ by their rounding (float64: up to ~n eps |x|), and scikit-learn
    # transforms float32 data in float32 (x - mean_ rounded to x's ulp), where normkit rounds once from float64.
    eps = np.finfo(dtype).eps
    scale = np.nanmin(np.abs(np.asarray(b.scale_))) if getattr(b, "scale_", None) is not None else 1.0
    atol = 4 * eps * (1 + np.nanmax(np.abs(b.transform(x)))) + (64 if dtype == "float64" else 2) * eps * np.nanmax(np.abs(x)) / max(scale, 1e-300)
    np.testing.assert_allclose(y, b.transform(x), rtol=4 * eps, atol=atol)
    back = get(a.inverse_transform(put(y, space)))
    np.testing.assert_allclose(back, b.inverse_transform(b.transform(x)), rtol=1e-5, atol=1e-5 * np.nanmax(np.abs(x)))


@pytest.mark.parametrize("ours", [normkit.StandardScaler, normkit.MinMaxScaler, normkit.MaxAbsScaler])
def test_partial_fit_over_batches_equals_one_fit(space, ours):
    x = datasets()["nan"]
    whole = ours().fit(put(x, space))
    parts = ours()
    for lo, hi in [(0, 1), (1, 150), (150, 151), (151, 400)]:
        parts.partial_fit(put(np.ascontiguousarray(x[lo:hi]), space))
    for key in ("count", "mean", "min", "max"):
        np.testing.assert_allclose(parts.fitted_state()[key], whole.fitted_state()[key], rtol=1e-14)
    np.testing.assert_allclose(parts.fitted_state()["m2"], whole.fitted_state()["m2"], rtol=1e-12)


def test_pickle_and_clone():
    x = datasets()["random"]
    a = normkit.StandardScaler().fit(x)
    b = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(a.transform(x), b.transform(x))
    c = sklearn.base.clone(normkit.MinMaxScaler(feature_range=(-1, 1)))
    assert c.get_params()["feature_range"] == (-1, 1)
    assert not hasattr(c, "n_features_in_")
    with pytest.raises(Exception, match="not fitted"):
        c.transform(x)


def test_pipeline():
    from sklearn.pipeline import make_pipeline
    x = datasets()["random"]
    y = make_pipeline(normkit.StandardScaler(), normkit.Normalizer()).fit_transform(x)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-12)


def test_state_file_round_trips_with_the_command_line(tmp_path):
    cli = os.environ.get("NORMKIT_CLI")
    if not cli:
        pytest.skip("NORMKIT_CLI not set (ctest sets it)")
    from normkit import _normkit  # noqa: F401
    x = datasets()["random"].astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    # Python -> CLI
    normkit.StandardScaler().fit(x).save(tmp_path / "py.safetensors")
    subprocess.run([cli, "apply", str(tmp_path / "x.npy"), "--state", str(tmp_path / "py.safetensors"), "--out", str(tmp_path / "y.npy"),
                    "--device", "cpu"], check=True, capture_output=True)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), skp.StandardScaler().fit(x).transform(x), rtol=2e-6, atol=2e-6)
    # CLI -> Python
    subprocess.run([cli, "fit", str(tmp_path / "x.npy"), "--method", "minmax", "--state", str(tmp_path / "cli.safetensors"), "--device", "cpu"],
                   check=True, capture_output=True)
    m = normkit.MinMaxScaler.load(tmp_path / "cli.safetensors")
    np.testing.assert_allclose(m.transform(x), skp.MinMaxScaler().fit(x).transform(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="minmax"):
        normkit.StandardScaler.load(tmp_path / "cli.safetensors")


def test_keras_normalization_restarts_on_adapt(space):
    a, b = RNG.normal(3, 2, size=(100, 4)), RNG.normal(-1, 5, size=(50, 4))
    layer = normkit.Normalization(axis=-1)
    layer.adapt(put(a, space))
    layer.adapt(put(b, space))  # Keras: adapt restarts
    np.testing.assert_allclose(get(layer(put(b, space))), (b - b.mean(0)) / np.maximum(b.std(0), 1e-7), rtol=1e-10, atol=1e-10)
    inv = normkit.Normalization(axis=-1, invert=True)
    inv.adapt(put(b, space))
    np.testing.assert_allclose(get(inv(put(np.zeros((2, 4)), space))), np.broadcast_to(b.mean(0), (2, 4)), rtol=1e-10)
    const = normkit.Normalization(mean=[1.0], variance=[4.0])
    np.testing.assert_allclose(const(np.array([[3.0]])), [[1.0]])


def test_feature_count_mismatch_and_bad_input():
    a = normkit.StandardScaler().fit(datasets()["random"])
    with pytest.raises(ValueError, match="features"):
        a.transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="2D"):
        normkit.StandardScaler().fit(np.zeros(5))
    with pytest.raises(ValueError, match="feature range"):
        normkit.MinMaxScaler(feature_range=(1, 0)).fit(np.zeros((2, 2)))


def test_loaded_estimators_keep_their_parameters(tmp_path):
    x = datasets()["random"]
    normkit.StandardScaler(with_std=False).fit(x).save(tmp_path / "s.safetensors")
    s = normkit.StandardScaler.load(tmp_path / "s.safetensors")
    assert s.get_params()["with_std"] is False and s.scale_ is None
    normkit.MinMaxScaler(feature_range=(-1, 2), clip=True).fit(x).save(tmp_path / "m.safetensors")
    m = normkit.MinMaxScaler.load(tmp_path / "m.safetensors")
    assert tuple(m.get_params()["feature_range"]) == (-1, 2) and m.get_params()["clip"] is True
    np.testing.assert_allclose(m.transform(x), skp.MinMaxScaler(feature_range=(-1, 2), clip=True).fit(x).transform(x), rtol=1e-12, atol=1e-12)


def test_sklearn_input_conventions():
    x = np.asfortranarray(datasets()["random"])
    a, b = normkit.StandardScaler().fit(x[:, :4]), skp.StandardScaler().fit(x[:, :4])  # non-contiguous NumPy: copied, as accepted
    np.testing.assert_allclose(a.transform(x[:, :4]), b.transform(x[:, :4]), rtol=1e-12, atol=1e-12)
    nan = datasets()["random"][:5].copy()
    nan[:, 1] = np.nan  # an all-NaN feature: NaN statistics, as scikit-learn's
    for ours, theirs, attrs in [(normkit.StandardScaler, skp.StandardScaler, ["mean_", "var_"]),
                                (normkit.MinMaxScaler, skp.MinMaxScaler, ["data_min_", "data_max_"]),
                                (normkit.MaxAbsScaler, skp.MaxAbsScaler, ["max_abs_"])]:
        a, b = ours().fit(nan), theirs().fit(nan)
        for attr in attrs:
            np.testing.assert_allclose(getattr(a, attr), getattr(b, attr), rtol=1e-12, err_msg=attr)
    bad = normkit.StandardScaler()
    with pytest.raises(ValueError, match="infinity"):
        bad.fit(np.array([[1.0, np.inf], [2.0, 3.0]]))
    assert not hasattr(bad, "n_features_in_")  # a failed first fit leaves it unfitted
    with pytest.raises(Exception, match="not fitted"):
        bad.transform(np.zeros((3, 2)))


def test_keras_normalization_pickles():
    x = datasets()["random"]
    layer = normkit.Normalization().adapt(x)
    again = pickle.loads(pickle.dumps(layer))
    np.testing.assert_array_equal(again(x[:3]), layer(x[:3]))


@pytest.mark.parametrize("make", [normkit.StandardScaler, normkit.MinMaxScaler, normkit.MaxAbsScaler, normkit.Normalizer])
def test_sklearn_check_estimator(make):
    """scikit-learn's own estimator checks, every one passing (no expected failures today)."""
    import warnings
    from sklearn.utils.estimator_checks import check_estimator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(make(), on_fail=None)
    failed = {r["check_name"]: str(r["exception"])[:200] for r in results if r["status"] == "failed"}
    assert not failed, failed


def test_a_rejected_batch_leaves_the_fit_unchanged():
    x = datasets()["random"]
    s = normkit.StandardScaler().fit(x)
    bad = x[:3].copy()
    bad[1, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        s.partial_fit(bad)
    np.testing.assert_allclose(s.transform(x), skp.StandardScaler().fit(x).transform(x), rtol=1e-12, atol=1e-12)
    nan = x[:6].copy()
    nan[:, 3] = np.nan  # all-NaN feature: scale_ (and min_) NaN as scikit-learn's
    for ours, theirs, attrs in [(normkit.StandardScaler, skp.StandardScaler, ["scale_"]), (normkit.MaxAbsScaler, skp.MaxAbsScaler, ["scale_"]),
                                (normkit.MinMaxScaler, skp.MinMaxScaler, ["scale_", "min_"])]:
        a, b = ours().fit(nan), theirs().fit(nan)
        for attr in attrs:
            np.testing.assert_allclose(getattr(a, attr), getattr(b, attr), rtol=1e-12, err_msg=attr)


def test_keras_normalization_with_given_statistics(space):
    x = RNG.normal(size=(5, 3))
    layer = normkit.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 1.0, 0.25])
    np.testing.assert_allclose(get(layer(put(x, space))), (x - [1.0, 2.0, 3.0]) / np.sqrt([4.0, 1.0, 0.25]), rtol=1e-12)


def test_normalizer_rejects_nan_and_infinity_on_host_and_device(space):
    x = datasets()["random"][:20].copy()
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[7, 3] = bad
        with pytest.raises(ValueError, match="infinity"):
            normkit.Normalizer().fit(put(y, space))
        fitted = normkit.Normalizer().fit(put(x, space))
        with pytest.raises(ValueError, match="infinity"):
            fitted.transform(put(y, space))
    huge = x.copy()
    huge[0, :] = np.finfo(huge.dtype).max  # (finite, though their sum overflows: accepted, as scikit-learn's)
    np.testing.assert_allclose(get(normkit.Normalizer().fit_transform(put(huge, space))), skp.Normalizer().fit_transform(huge), rtol=1e-5, atol=1e-6)
