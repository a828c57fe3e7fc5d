"""Statistics of a data set that arrives in pieces: batches along axis 0, or runs of a file's flat elements that may
split rows and images (a file read in chunks of bytes), summarised and merged without holding the data."""
from __future__ import annotations

from . import _arrays, _normkit
from .functional import ALL_STATS

_SUMMARY_BYTES = {False: 80, True: 56}  # (StatsSummary; IntegerSummary for uint8 data)


class StreamingStats:
    """Data-set statistics over pieces, in one read of each (include/normkit/stats.hpp, accumulate_stats_range):

        acc = normkit.StreamingStats(axis=(0, 1, 2))   # NHWC images: per-channel statistics of the data set
        for batch in batches:                          # NumPy on the host, or PyTorch/CuPy/DLPack device arrays
            acc.update(batch)                          # [n, H, W, C], any n
        acc.result(("mean", "std"))                    # {"mean": [C], "std": [C]}

    `axis` (None: all) names the reduced axes of the whole data set, which must include axis 0: pieces are batches
    along it. Every piece has the first one's dtype, trailing shape and memory (host, or one CUDA device); the
    summaries live there too. uint8 data is summarised in exact integers (Σx, Σx², counts, extremes: the same bits
    whatever the batching, order or chunking, and `merge` is integer addition); other dtypes in Welford/Chan
    summaries (float64 mean and M2), merged in the order given. NaN and ±Inf follow numpy; `ignore_nan=True` (here,
    as normkit.stats' argument) skips NaN as numpy's nan-functions do.

    update_elements(run, first, shape) takes a contiguous run of elements [first, first + run.size) of the flat
    order of a tensor of `shape` ([N, *trailing]): a chunk of a file read in bytes, which may end inside a row.

    Streams: device work is enqueued on `stream` (None: the piece's producer's current stream); `merge` and `result`
    run on the stream of the last update unless given one. Synchronization: the first piece's call copies the empty
    summaries to the device and waits for that copy; `result` returns device arrays without synchronizing (reading
    them on the host synchronizes). Pickling keeps the summaries on the host (device ones copied back after the last
    update's work, a synchronization): parts summarised by other processes merge where they arrive, also into a new
    StreamingStats."""

    def __init__(self, axis=0, ignore_nan=False):
        self.axis = axis
        self.ignore_nan = bool(ignore_nan)
        self._summaries = None
        self._dtype = self._trailing = self._axes = self._kept = None
        self._where = (False, -1)
        self._stream = 0
        self.n_samples_seen_ = 0  # rows of axis 0 taken by update() (update_elements counts the rows it completes)

    def __getstate__(self):
        state = dict(self.__dict__)
        if self._summaries is not None:
            import numpy as np
            host = np.empty((int(np.prod(tuple(self._summaries.shape))),), dtype=np.uint8)
            _normkit.copy_bytes(host, self._summaries, self._stream)
            state["_summaries"] = host.tobytes()
            state["_where"], state["_stream"] = (False, -1), 0
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if isinstance(self._summaries, bytes):
            import numpy as np
            self._summaries = np.frombuffer(self._summaries, dtype=np.uint8).copy()

    def _fresh(self, x, shape, stream):
        """The state the first piece starts (kept by the caller only once its accumulation succeeded)."""
        ndim = len(shape)
        axes = _arrays.normalize_axes(self.axis, ndim)
        if axes is not None and 0 not in axes:
            raise ValueError(f"normkit.StreamingStats: argument 'axis': pieces are batches along axis 0, which must be reduced; got {self.axis!r}")
        dtype = _arrays.dtype_name(x)
        if dtype == "int64":
            raise TypeError("normkit.StreamingStats: int64 data is not supported (float32, float64, float16, bfloat16, uint8)")
        kept = _arrays.reduced_shape(tuple(shape), axes)
        n = 1
        for e in kept:
            n *= e
        integer = dtype == "uint8"
        import numpy as np
        empties = np.frombuffer(_normkit.empty_summary_bytes(integer) * n, dtype=np.uint8).copy()
        summaries = _arrays.empty_like_library(x, (n * _SUMMARY_BYTES[integer],), "uint8")
        if n:
            _normkit.copy_bytes(summaries, empties, stream)
        return {"_summaries": summaries, "_dtype": dtype, "_trailing": tuple(shape[1:]), "_axes": axes, "_kept": kept,
                "_where": _arrays.device_of(x)}

    def _piece(self, x, shape, first, size, stream, what):
        """Checks a piece against the first one and merges it (the first one: into new summaries, kept on success)."""
        if len(shape) < 1:
            raise ValueError(f"normkit.StreamingStats.{what}: pieces are batches along axis 0: a 0-dimensional array has no rows")
        stream = _arrays.stream_handle(stream, x)
        fresh = None
        if self._summaries is None:
            fresh = self._fresh(x, shape, stream)
        elif _arrays.dtype_name(x) != self._dtype:
            raise TypeError(f"normkit.StreamingStats.{what}: dtype {_arrays.dtype_name(x)}, the first piece's is {self._dtype}")
        elif tuple(shape[1:]) != self._trailing:
            raise ValueError(f"normkit.StreamingStats.{what}: rows of shape {tuple(shape[1:])}, the first piece's are {self._trailing}")
        elif _arrays.device_of(x) != self._where:
            raise ValueError(f"normkit.StreamingStats.{what}: a piece on {_arrays._where(_arrays.device_of(x))}, the summaries on "
                             f"{_arrays._where(self._where)}")
        state = fresh or self.__dict__
        if size:  # (an empty run's data pointer may be null: nothing to merge)
            axes = state["_axes"]
            _normkit.accumulate_elements(x, list(shape), int(first), axes or [], axes is None, state["_summaries"], stream)
        elif not 0 <= int(first) <= _count(shape):
            raise ValueError(f"normkit.StreamingStats.{what}: first {first} is outside the {_count(shape)} elements of {tuple(shape)}")
        if fresh:
            self.__dict__.update(fresh)
        self._stream = stream

    @_arrays.accepting
    def update(self, batch, stream=None):
        """Merges the batch [n, *trailing] (rows of the data set) into the summaries. Returns self."""
        shape = tuple(int(e) for e in batch.shape)
        self._piece(batch, shape, 0, _count(shape), stream, "update")
        self.n_samples_seen_ += shape[0] if shape else 0
        return self

    @_arrays.accepting
    def update_elements(self, run, first, shape, stream=None):
        """Merges the contiguous run of elements [first, first + run.size) of the flat (row-major) order of a tensor of
        `shape` = [N, *trailing] (a chunk of a file of N rows; it may start and end inside a row). Returns self."""
        shape = tuple(int(e) for e in shape)
        size = _count(tuple(run.shape))
        self._piece(run, shape, first, size, stream, "update_elements")
        row = _count(shape[1:])
        if row:
            self.n_samples_seen_ += (int(first) + size) // row - int(first) // row
        return self

    def merge(self, other, stream=None):
        """Merges another StreamingStats' summaries (another process's or device's part of the data set, the same dtype,
        trailing shape, axes and memory) into these: the statistics of both parts. A StreamingStats without pieces
        takes a copy of the other's. Returns self."""
        if other._summaries is None:
            return self
        if self._summaries is None:
            if _arrays.normalize_axes(self.axis, len(other._trailing) + 1) != other._axes:
                raise ValueError("normkit.StreamingStats.merge: the other summarises other axes")
            state = {k: v for k, v in other.__dict__.items() if k not in ("axis", "ignore_nan")}
            state["_summaries"] = _arrays.empty_like_library(other._summaries, (_count(tuple(other._summaries.shape)),), "uint8")
            _normkit.copy_bytes(state["_summaries"], other._summaries, other._stream)  # (after the other's work)
            self.__dict__.update(state)
            return self
        if (other._dtype, other._trailing, other._axes, other._where) != (self._dtype, self._trailing, self._axes, self._where):
            raise ValueError("normkit.StreamingStats.merge: the other summarises another dtype, row shape, axis or memory")
        stream = self._stream if stream is None else _arrays.stream_handle(stream)
        _normkit.merge_summary_arrays(self._summaries, other._summaries, self._dtype == "uint8", stream)
        self.n_samples_seen_ += other.n_samples_seen_
        return self

    def result(self, stats=("count", "mean", "var", "std", "min", "max", "sum"), ddof=0, stream=None):
        """{name: array of the kept shape} of what was merged so far (the names and dtypes of normkit.stats: int64 count
        and l0; float64 for float64 data, float32 otherwise; var = M2 / (count - ddof)), in the summaries' memory.
        uint8 data: the exact integer sums rounded once."""
        if self._summaries is None:
            raise ValueError("normkit.StreamingStats.result: no piece was given")
        names = [stats] if isinstance(stats, str) else list(stats)
        for name in names:
            if name not in ALL_STATS:
                raise ValueError(f"normkit.StreamingStats.result: unknown statistic {name!r} ({', '.join(ALL_STATS)})")
        float_out = "float64" if self._dtype == "float64" else "float32"
        outs = [_arrays.empty_like_library(self._summaries, self._kept, "int64" if n in ("count", "l0") else float_out) for n in names]
        stream = self._stream if stream is None else _arrays.stream_handle(stream)
        _normkit.finalize_summary_arrays(self._summaries, self._dtype == "uint8", names, outs, int(ddof), self.ignore_nan, stream)
        return dict(zip(names, outs))


def _count(shape):
    n = 1
    for e in shape:
        n *= int(e)
    return n
