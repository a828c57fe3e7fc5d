"""Arrays in and out: which memory an array lives in, its dtype name, outputs allocated in the input's
library, and the stream a call runs on. No copies: every array reaches C++ through DLPack or the buffer
protocol as it is."""
from __future__ import annotations

import functools
import numbers

from . import _normkit

_KDL_CPU, _KDL_CUDA, _KDL_CUDA_HOST = 1, 2, 3


class DeviceArray:
    """A C-contiguous array in CUDA device memory that normkit allocated (cudaMalloc; freed with the last reference).
    It speaks DLPack: torch.from_dlpack(a) and cupy.from_dlpack(a) wrap it without a copy, and normkit's functions
    take it like any device array. `shape` and `dtype` (a normkit dtype name) describe it."""

    def __init__(self, handle, shape, dtype):
        self._handle = handle
        self.shape = tuple(int(e) for e in shape)
        self.dtype = dtype

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def data_ptr(self):
        """The device address of the first element (an int)."""
        return _normkit.data_pointer(self._handle)

    @property
    def size(self):
        n = 1
        for e in self.shape:
            n *= e
        return n

    def __dlpack__(self, stream=None, **kwargs):
        return self._handle.__dlpack__()

    def __dlpack_device__(self):
        return self._handle.__dlpack_device__()

    def __repr__(self):
        return f"normkit.DeviceArray(shape={self.shape}, dtype={self.dtype}, device={self.__dlpack_device__()[1]})"


_TYPESTR = {"f4": "float32", "f8": "float64", "f2": "float16", "u1": "uint8", "i8": "int64"}


class CudaInterfaceArray:
    """An array that only speaks __cuda_array_interface__ (Numba's device arrays, say) seen through DLPack, without a
    copy: normkit's functions take it as any device array, and it keeps the original alive. Its outputs are
    normkit DeviceArrays (or pass out=, another such array). The interface's `stream` (version 3) is the stream a
    call runs on when stream=None, so the producer's work is ordered before it; its read-only flag is not checked."""

    def __init__(self, original):
        interface = original.__cuda_array_interface__
        typestr = interface["typestr"]
        dtype = _TYPESTR.get(typestr[1:]) if typestr[:1] in "<|" else None
        if dtype is None:
            raise TypeError(f"normkit: __cuda_array_interface__ typestr {typestr!r} is not supported (float32, float64, float16, uint8, int64)")
        shape = tuple(int(e) for e in interface["shape"])
        itemsize = int(typestr[2:])
        strides = interface.get("strides")
        if strides is not None and any(int(b) % itemsize for b in strides):
            raise ValueError("normkit: a __cuda_array_interface__ array whose strides are not whole elements")
        element_strides = [] if strides is None else [int(b) // itemsize for b in strides]
        if interface.get("mask") is not None:
            raise ValueError("normkit: masked __cuda_array_interface__ arrays are not supported")
        self.original, self.shape, self.dtype = original, shape, dtype
        self.stream = interface.get("stream")  # (1: the legacy default stream, 2: per-thread, else a cudaStream_t)
        self._view = _normkit.cuda_interface_view(int(interface["data"][0]), list(shape), element_strides, dtype, original)

    def __dlpack__(self, stream=None, **kwargs):
        return self._view.__dlpack__()

    def __dlpack_device__(self):
        return self._view.__dlpack_device__()


def accept(*arrays):
    """The array arguments of a call as normkit reads them: unchanged, except __cuda_array_interface__-only objects
    (wrapped, no copy). One argument gives one value, several a tuple."""
    out = tuple(CudaInterfaceArray(a) if a is not None and not hasattr(a, "__dlpack__") and hasattr(a, "__cuda_array_interface__") else a
                for a in arrays)
    return out[0] if len(out) == 1 else out


def accepting(function):
    """Decorator of the public functions and estimator methods: their arguments go through accept()."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*(accept(a) for a in args), **{k: accept(v) for k, v in kwargs.items()})
    return wrapper


def device_empty(shape, dtype, device=0):
    """A new DeviceArray (uninitialised)."""
    return DeviceArray(_normkit.device_empty([int(e) for e in shape], dtype, int(device)), shape, dtype)


def library(x):
    """'numpy', 'torch', 'cupy' or 'other' (DLPack or buffer-protocol objects of any other library)."""
    module = type(x).__module__.split(".")[0]
    return module if module in ("numpy", "torch", "cupy") else "other"


def device_of(x):
    """(is_device, device_id) of an array, from the DLPack protocol (or the CUDA array interface)."""
    if library(x) == "numpy":
        return False, -1
    if hasattr(x, "__dlpack_device__"):
        kind, index = x.__dlpack_device__()
        kind = int(kind)
        if kind == _KDL_CUDA:
            return True, int(index)
        if kind in (_KDL_CPU, _KDL_CUDA_HOST):
            return False, -1
        raise ValueError(f"normkit: arrays on DLPack device type {kind} are not supported (host or CUDA memory only)")
    if hasattr(x, "__cuda_array_interface__"):
        return True, -1
    return False, -1


def check_same_device(name_array_pairs):
    """Raises ValueError when the arrays do not all live in the same memory (host, or one CUDA device)."""
    seen = None
    for name, a in name_array_pairs:
        if a is None:
            continue
        where = device_of(a)
        if seen is None:
            seen = (name, where)
        elif where != seen[1]:
            raise ValueError(f"normkit: argument '{name}' lives on {_where(where)}, argument '{seen[0]}' on {_where(seen[1])}")
    return seen[1] if seen else (False, -1)


def _where(w):
    return f"CUDA device {w[1]}" if w[0] else "the host"


def dtype_name(x):
    """normkit's name of an array's dtype: float32, float64, float16, bfloat16, uint8, int64 (others raise TypeError)."""
    d = str(getattr(x, "dtype", ""))
    d = d.replace("torch.", "")
    names = {"float32": "float32", "float64": "float64", "float16": "float16", "bfloat16": "bfloat16", "uint8": "uint8",
             "int64": "int64", "float": "float32", "double": "float64", "half": "float16"}
    if d not in names:
        raise TypeError(f"normkit: dtype {d or type(x).__name__} is not supported (float32, float64, float16, bfloat16, uint8)")
    return names[d]


def empty_like_library(x, shape, dtype):
    """A new array of `shape` and normkit dtype `dtype` in x's memory and library: NumPy for host input, PyTorch and
    CuPy for theirs, otherwise a DLPack-exporting device array (wrap it with your library's from_dlpack)."""
    shape = tuple(int(e) for e in shape)
    lib = library(x)
    device, index = device_of(x)
    if lib == "torch":
        import torch
        return torch.empty(shape, dtype=getattr(torch, dtype), device=x.device)
    if lib == "cupy":
        import cupy
        with cupy.cuda.Device(index):
            return cupy.empty(shape, dtype=dtype)
    if device:
        return device_empty(shape, dtype, max(index, 0))
    import numpy as np
    if dtype == "bfloat16":
        raise TypeError("normkit: NumPy has no bfloat16: pass out= (a PyTorch or ml_dtypes bfloat16 array) for bfloat16 output")
    return np.empty(shape, dtype=dtype)


def stream_handle(stream, x=None):
    """The cudaStream_t of a call as an integer. None: the producer's current stream (PyTorch's or CuPy's current
    stream for their arrays; the legacy default stream otherwise). An int is a handle; PyTorch streams give
    .cuda_stream, CuPy streams .ptr."""
    if stream is None:
        if isinstance(x, CudaInterfaceArray) and x.stream is not None:
            return int(x.stream)
        lib = library(x) if x is not None else "other"
        if lib == "torch" and device_of(x)[0]:
            import torch
            return int(torch.cuda.current_stream(x.device).cuda_stream)
        if lib == "cupy":
            import cupy
            return int(cupy.cuda.get_current_stream().ptr)
        return 0
    if isinstance(stream, numbers.Integral):
        return int(stream)
    for attribute in ("cuda_stream", "ptr"):
        if hasattr(stream, attribute):
            return int(getattr(stream, attribute))
    raise TypeError(f"normkit: argument 'stream': expected None, an integer handle or a PyTorch/CuPy stream, got {type(stream).__name__}")


def reduced_shape(shape, axes):
    """The kept shape of `shape` with `axes` (None: all) reduced."""
    if axes is None:
        return ()
    ndim = len(shape)
    reduced = {a % ndim if ndim else a for a in axes}
    return tuple(e for d, e in enumerate(shape) if d not in reduced)


def normalize_axes(axis, ndim, name="axis"):
    """None, an int or a sequence of ints -> None or a sorted list of non-negative axes (ValueError otherwise)."""
    if axis is None:
        return None
    axes = [axis] if isinstance(axis, numbers.Integral) else list(axis)
    out = []
    for a in axes:
        if not isinstance(a, numbers.Integral) or not -ndim <= a < ndim:
            raise ValueError(f"normkit: argument '{name}': axis {a} is out of range for {ndim} dimensions")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"normkit: argument '{name}': repeated axis in {axis}")
    return sorted(out)
