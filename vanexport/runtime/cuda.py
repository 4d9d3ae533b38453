"""CUDA device memory, streams and copies for the TensorRT backend, through the CUDA driver API (libcuda via ctypes).

Why the driver API and not PyTorch or cuda-python (docs/tensorrt.md has the long version): libcuda *is* the installed
driver, so it is on every GPU machine and every Jetson and always matches it; it adds no dependency; and
`cuDevicePrimaryCtxRetain` + `cuCtxSetCurrent` make current the device's primary context, the very context the CUDA
runtime inside TensorRT uses (it is what `cudaSetDevice` does). cuda-python's runtime module links its own cudart,
which can be newer than a Jetson's driver.

Every call passes ctypes values of the C types (CUdeviceptr is 64-bit, streams and contexts are pointers), so the
calls are right with or without `argtypes`; on the real library the prototypes are declared too.
"""
from __future__ import annotations

import contextlib
import ctypes

import numpy as np

from ..errors import VanexportError
from ..machine import CUDA_SUCCESS, device_handle, driver, error_name

CU_STREAM_NON_BLOCKING = 1  # not synchronised with the legacy default stream (TensorRT advises a stream of one's own)
CUdeviceptr = ctypes.c_uint64
_PTR = ctypes.c_void_p
_PROTOTYPES = {  # name: argument types (every function returns a CUresult, an int)
    "cuDevicePrimaryCtxRetain": (ctypes.POINTER(_PTR), ctypes.c_int),
    "cuDevicePrimaryCtxRelease_v2": (ctypes.c_int,),
    "cuCtxSetCurrent": (_PTR,),
    "cuCtxPushCurrent_v2": (_PTR,),
    "cuCtxPopCurrent_v2": (ctypes.POINTER(_PTR),),
    "cuStreamCreate": (ctypes.POINTER(_PTR), ctypes.c_uint),
    "cuStreamSynchronize": (_PTR,),
    "cuStreamDestroy_v2": (_PTR,),
    "cuMemAlloc_v2": (ctypes.POINTER(CUdeviceptr), ctypes.c_size_t),
    "cuMemFree_v2": (CUdeviceptr,),
    "cuMemcpyHtoDAsync_v2": (CUdeviceptr, _PTR, ctypes.c_size_t, _PTR),
    "cuMemcpyDtoHAsync_v2": (_PTR, CUdeviceptr, ctypes.c_size_t, _PTR),
}
HINT = "check `nvidia-smi` (GPU memory, other processes); run with --debug for the traceback"


def declare(lib) -> None:
    """Prototypes on the real libcuda (a stand-in in the tests has none to set)."""
    if not isinstance(lib, ctypes.CDLL):
        return
    for name, args in _PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = list(args), ctypes.c_int


def check(lib, result: int, what: str) -> None:
    if result != CUDA_SUCCESS:
        raise VanexportError(f"CUDA {what} failed ({error_name(lib, result)})", HINT)


class Device:
    """CUDA device `index`, its primary context retained and made current on the calling thread.

    Make it current again (`activate`) on any other thread before TensorRT runs there. `close` releases the context
    (the CUDA runtime keeps its own reference, so TensorRT objects outlive it safely; still, close last).
    """

    def __init__(self, index: int = 0):
        self.index = index
        self.lib = driver()
        declare(self.lib)
        self._device = device_handle(self.lib, index)
        self._context = _PTR()
        check(self.lib, self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(self._context), self._device),
              f"cuDevicePrimaryCtxRetain (device {index})")
        self.activate()

    def activate(self) -> None:
        if self._context is None:
            raise VanexportError(f"CUDA device {self.index} was closed", "this is a bug in vanexport; please report it")
        check(self.lib, self.lib.cuCtxSetCurrent(self._context), f"cuCtxSetCurrent (device {self.index})")

    @contextlib.contextmanager
    def pushed(self):
        """This device's context current on the calling thread for the block, the caller's own restored after
        (cuCtxPushCurrent/cuCtxPopCurrent): for freeing from any thread, e.g. in __del__, without changing which
        context the thread had."""
        if self._context is None:
            raise VanexportError(f"CUDA device {self.index} was closed", "this is a bug in vanexport; please report it")
        check(self.lib, self.lib.cuCtxPushCurrent_v2(self._context), f"cuCtxPushCurrent (device {self.index})")
        try:
            yield self
        finally:
            check(self.lib, self.lib.cuCtxPopCurrent_v2(ctypes.byref(_PTR())), f"cuCtxPopCurrent (device {self.index})")

    def stream(self) -> "Stream":
        return Stream(self)

    def alloc(self, nbytes: int) -> "DeviceMemory":
        return DeviceMemory(self, nbytes)

    def close(self) -> None:
        if self._context is not None:
            self._context = None
            check(self.lib, self.lib.cuDevicePrimaryCtxRelease_v2(self._device), "cuDevicePrimaryCtxRelease")

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Stream:
    """A non-blocking CUDA stream; `handle` is the integer TensorRT's execute_async_v3 takes."""

    def __init__(self, device: Device):
        self.lib = device.lib
        self._stream = _PTR()
        check(self.lib, self.lib.cuStreamCreate(ctypes.byref(self._stream), ctypes.c_uint(CU_STREAM_NON_BLOCKING)),
              "cuStreamCreate")

    @property
    def handle(self) -> int:
        return int(self._stream.value or 0)

    def synchronize(self) -> None:
        check(self.lib, self.lib.cuStreamSynchronize(self._stream), "cuStreamSynchronize")

    def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            check(self.lib, self.lib.cuStreamDestroy_v2(stream), "cuStreamDestroy")


class DeviceMemory:
    """`nbytes` of device memory; copies to and from numpy arrays are queued on a stream (synchronise before
    reading the host array, and keep it alive until then)."""

    def __init__(self, device: Device, nbytes: int):
        self.lib = device.lib
        self.nbytes = int(nbytes)
        self._ptr = CUdeviceptr()
        check(self.lib, self.lib.cuMemAlloc_v2(ctypes.byref(self._ptr), ctypes.c_size_t(max(self.nbytes, 1))),
              f"cuMemAlloc ({self.nbytes} bytes)")

    @property
    def ptr(self) -> int:
        """The device address, for IExecutionContext.set_tensor_address."""
        return int(self._ptr.value)

    def copy_from(self, host: np.ndarray, stream: Stream) -> None:
        self._fits(host)
        check(self.lib, self.lib.cuMemcpyHtoDAsync_v2(self._ptr, _PTR(host.ctypes.data), ctypes.c_size_t(host.nbytes),
                                                      stream._stream), "cuMemcpyHtoDAsync")

    def copy_to(self, host: np.ndarray, stream: Stream) -> None:
        self._fits(host)
        check(self.lib, self.lib.cuMemcpyDtoHAsync_v2(_PTR(host.ctypes.data), self._ptr, ctypes.c_size_t(host.nbytes),
                                                      stream._stream), "cuMemcpyDtoHAsync")

    def _fits(self, host: np.ndarray) -> None:
        if not host.flags.c_contiguous or host.nbytes > self.nbytes:
            raise ValueError(f"host array of {host.nbytes} bytes (contiguous: {host.flags.c_contiguous}) does not "
                             f"fit a device buffer of {self.nbytes} bytes")

    def close(self) -> None:
        if self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            check(self.lib, self.lib.cuMemFree_v2(ptr), "cuMemFree")
