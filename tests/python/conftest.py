"""Fixtures of the Python tests: `space` runs a test on host arrays and, where a CUDA device (or ../shared/ptxemu)
is present, on normkit device arrays; NORMKIT_REQUIRE_DEVICE=1 turns the device skip into a failure."""
import os

import numpy as np
import pytest

import normkit


def _device_params():
    return ["host", "device"]


@pytest.fixture(params=_device_params())
def space(request):
    if request.param == "device" and not normkit.cuda_available():
        if os.environ.get("NORMKIT_REQUIRE_DEVICE") == "1":
            pytest.fail("no CUDA device (required)")
        pytest.skip("no CUDA device and no emulator")
    return request.param


def put(a, space):
    """a (NumPy) in the test's memory space."""
    return normkit.device_array(a) if space == "device" else a


def get(a):
    """A result as NumPy (device results copied back)."""
    return a if isinstance(a, np.ndarray) else normkit.to_host(a)
