"""normkit: normalization on NumPy arrays and CUDA device arrays (PyTorch, CuPy, DLPack), without copies.

Functions: stats, normalize (l1/l2/max rows), image_normalize; the layers layer_norm, rms_norm, batch_norm, group_norm
and their *_backward.
PyTorch: normkit.torch (custom ops with autograd, and drop-in modules), imported on demand.
Estimators: StandardScaler, MinMaxScaler, MaxAbsScaler, Normalizer (scikit-learn), Normalization (Keras).
Data sets: StreamingStats (statistics over batches or chunks of files, exact for uint8).
Every function and estimator documents its formula, defaults and edge cases; the C++ headers under
include/normkit/ hold the full semantics."""
from . import _normkit
from ._arrays import DeviceArray
from .estimators import MaxAbsScaler, MinMaxScaler, Normalization, Normalizer, StandardScaler
from .functional import (batch_norm, batch_norm_backward, group_norm, group_norm_backward, image_normalize, layer_norm, layer_norm_backward,
                         normalize, rms_norm, rms_norm_backward, stats)
from .streaming import StreamingStats

cuda_available = _normkit.cuda_available


def device_array(host_array, device=0):
    """A copy of a host array in CUDA device memory, as a DLPack-exporting array (torch.from_dlpack and
    cupy.from_dlpack wrap it without a copy); normkit functions take it as they take PyTorch or CuPy arrays."""
    import numpy as np
    from ._arrays import device_empty, dtype_name
    a = np.ascontiguousarray(host_array)
    d = device_empty(a.shape, dtype_name(a), device)
    _normkit.copy_bytes(d, a)
    return d


def to_host(array):
    """A NumPy copy of a device array made by normkit (synchronizes)."""
    import numpy as np
    if str(array.dtype) == "bfloat16":
        raise TypeError("normkit.to_host: NumPy has no bfloat16 (wrap the array with torch.from_dlpack or cupy.from_dlpack)")
    out = np.empty(tuple(array.shape), dtype=str(array.dtype))
    _normkit.copy_bytes(out, array)
    return out


__all__ = ["stats", "normalize", "image_normalize", "layer_norm", "rms_norm", "layer_norm_backward", "rms_norm_backward", "batch_norm",
           "batch_norm_backward", "group_norm", "group_norm_backward", "StandardScaler", "MinMaxScaler", "MaxAbsScaler",
           "Normalizer", "Normalization", "StreamingStats", "cuda_available", "device_array", "to_host", "DeviceArray"]
__version__ = "0.1.0"
