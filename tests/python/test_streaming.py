"""normkit.StreamingStats against NumPy's float64 statistics of the whole data set: batches of uneven sizes, runs of
flat elements that split rows and images, merges of parts; uint8 exactly (Python's integers); host and device."""
import numpy as np
import pytest

import normkit
from conftest import get, put


def _reference(data, axis):
    x = data.astype(np.float64)
    return {"count": np.sum(np.ones_like(x), axis=axis), "mean": x.mean(axis=axis), "var": x.var(axis=axis), "min": x.min(axis=axis),
            "max": x.max(axis=axis), "sum": x.sum(axis=axis), "std": x.std(axis=axis, ddof=1)}


def _check(result, data, axis, tol, what):
    ref = _reference(data, axis)
    for name, want in ref.items():
        if name not in result:
            continue
        got = get(result[name]).astype(np.float64)
        assert got.shape == np.shape(want), (what, name)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=f"{what} {name}")


@pytest.mark.parametrize("dtype", ["float32", "uint8", "float16"])
@pytest.mark.parametrize("axis", [0, (0, 1, 2), (0, 2, 3), None])
def test_batches_give_the_whole(space, dtype, axis):
    rng = np.random.default_rng(5)
    data = (rng.integers(0, 256, (23, 4, 5, 3)) if dtype == "uint8" else rng.standard_normal((23, 4, 5, 3)) * 3 + 1).astype(dtype)
    acc = normkit.StreamingStats(axis=axis)
    for lo, hi in [(0, 7), (7, 8), (8, 20), (20, 23)]:
        acc.update(put(np.ascontiguousarray(data[lo:hi]), space))
    assert acc.n_samples_seen_ == 23
    result = acc.result(("count", "mean", "var", "min", "max", "sum"))
    _check(result, data, axis, 2e-3 if dtype == "float16" else 2e-5, f"{dtype} axis {axis}")
    _check(acc.result(("std",), ddof=1), data, axis, 2e-3 if dtype == "float16" else 2e-5, f"{dtype} axis {axis} std ddof 1")


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("run", [1, 13, 60, 1000])
def test_runs_that_split_rows_and_images(space, dtype, run):
    rng = np.random.default_rng(6)
    data = (rng.integers(0, 256, (9, 5, 4, 3)) if dtype == "uint8" else rng.standard_normal((9, 5, 4, 3))).astype(dtype)
    flat = data.reshape(-1)
    if space == "device" and run == 1:
        pytest.skip("540 one-element pieces: too many launches under the emulator")
    acc = normkit.StreamingStats(axis=(0, 1, 2))
    for first in range(0, flat.size, run):
        acc.update_elements(put(np.ascontiguousarray(flat[first:first + run]), space), first, data.shape)
    assert acc.n_samples_seen_ == 9
    _check(acc.result(("count", "mean", "var", "min", "max", "sum")), data, (0, 1, 2), 2e-5, f"runs of {run}")


def test_uint8_is_exact_whatever_the_pieces(space):
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, (40, 6, 3), dtype=np.uint8)
    whole = normkit.StreamingStats(axis=(0, 1)).update(put(data, space)).result(("count", "sum", "mean", "var"))
    pieces = normkit.StreamingStats(axis=(0, 1))
    for lo in (30, 0, 12):  # (out of order: integer sums do not care)
        pieces.update(put(np.ascontiguousarray(data[lo:lo + 12 if lo < 30 else 40]), space))
    part = normkit.StreamingStats(axis=(0, 1)).update(put(np.ascontiguousarray(data[24:30]), space))
    got = pieces.merge(part).result(("count", "sum", "mean", "var"))
    x = data.astype(np.int64)
    assert get(whole["sum"]).tolist() == x.sum(axis=(0, 1)).astype(np.float32).tolist()
    for name in ("count", "sum", "mean", "var"):
        assert np.array_equal(get(got[name]), get(whole[name])), name


def test_merge_of_parts_equals_the_whole(space):
    rng = np.random.default_rng(8)
    data = rng.standard_normal((50, 7)).astype(np.float32) + 1e4
    a, b = normkit.StreamingStats(axis=0), normkit.StreamingStats(axis=0)
    a.update(put(data[:31], space))
    b.update(put(np.ascontiguousarray(data[31:]), space))
    _check(a.merge(b).result(("count", "mean", "var", "min", "max", "sum")), data, 0, 2e-5, "merged")


def test_nan_and_ignore_nan(space):
    data = np.array([[1.0, np.nan], [3.0, 4.0]], dtype=np.float32)
    r = normkit.StreamingStats(axis=0).update(put(data, space)).result(("mean",))
    assert np.isnan(get(r["mean"])[1]) and get(r["mean"])[0] == 2.0
    r = normkit.StreamingStats(axis=0, ignore_nan=True).update(put(data, space)).result(("mean", "count"))
    assert get(r["mean"]).tolist() == [2.0, 4.0] and get(r["count"]).tolist() == [2, 1]


def test_float_parts_pickled_or_adopted_merge(space):
    import pickle
    rng = np.random.default_rng(10)
    data = rng.standard_normal((33, 5)).astype(np.float32) * 2 + 3
    parts = [normkit.StreamingStats(axis=0).update(put(np.ascontiguousarray(data[lo:lo + 11]), space)) for lo in (0, 11, 22)]
    total = normkit.StreamingStats(axis=0)
    for p in parts:  # (the first merge into the empty one takes a copy of that part)
        total.merge(p)
    _check(total.result(("count", "mean", "var", "min", "max", "sum")), data, 0, 2e-5, "adopted")
    parts[0].update(put(np.ascontiguousarray(data[:1]), space))  # (the copy is not the part: the total is unchanged)
    _check(total.result(("count", "mean")), data, 0, 2e-5, "adopted, part changed after")
    host = [pickle.loads(pickle.dumps(normkit.StreamingStats(axis=0).update(put(np.ascontiguousarray(data[lo:lo + 11]), space))))
            for lo in (0, 11, 22)]
    merged = host[0].merge(host[1]).merge(host[2])
    _check(merged.result(("count", "mean", "var", "min", "max", "sum")), data, 0, 2e-5, "pickled")
    with pytest.raises(ValueError, match="another dtype"):
        merged.merge(normkit.StreamingStats(axis=0).update(data.astype(np.float64)))
    with pytest.raises(ValueError, match="other axes"):
        normkit.StreamingStats(axis=None).merge(parts[1])


def test_a_failed_first_piece_leaves_nothing_started():
    acc = normkit.StreamingStats(axis=0)
    with pytest.raises(ValueError):
        acc.update_elements(np.zeros(5, np.float32), 4, (2, 3))
    with pytest.raises(ValueError, match="no piece"):
        acc.result()
    acc.update_elements(np.zeros(0, np.float32), 6, (2, 3))  # (an empty last chunk)
    assert acc.n_samples_seen_ == 0 and get(acc.result(("count",))["count"]).tolist() == [0, 0, 0]


def test_bad_pieces_are_clear_errors():
    acc = normkit.StreamingStats(axis=1)
    with pytest.raises(ValueError, match="axis 0"):
        acc.update(np.zeros((2, 3), np.float32))
    acc = normkit.StreamingStats(axis=0)
    acc.update(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="rows of shape"):
        acc.update(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        acc.update(np.zeros((2, 3), np.float64))
    with pytest.raises(ValueError, match="first \\+ count"):
        acc.update_elements(np.zeros(5, np.float32), 4, (2, 3))
    with pytest.raises(ValueError, match="unknown statistic"):
        acc.result(("median",))
    with pytest.raises(ValueError, match="no piece"):
        normkit.StreamingStats().result()


def test_pickled_parts_merge_on_the_host(space):
    import pickle
    rng = np.random.default_rng(9)
    data = rng.integers(0, 256, (30, 4), dtype=np.uint8)
    parts = [pickle.loads(pickle.dumps(normkit.StreamingStats(axis=0).update(put(np.ascontiguousarray(data[lo:lo + 10]), space))))
             for lo in (0, 10, 20)]
    total = parts[0].merge(parts[1]).merge(parts[2])
    assert total.n_samples_seen_ == 30
    got = total.result(("count", "sum", "min", "max"))
    x = data.astype(np.int64)
    assert got["count"].tolist() == [30] * 4 and got["sum"].tolist() == x.sum(axis=0).tolist()
    assert got["min"].tolist() == x.min(axis=0).tolist() and got["max"].tolist() == x.max(axis=0).tolist()
