"""Can this machine build and run TensorRT engines? One line saying what is missing and how to get it.

Checked in the order a user fixes them: the TensorRT package, the NVIDIA driver, a CUDA device. The driver and
the device are asked through the CUDA driver API (libcuda, via ctypes), which every machine with the driver has,
so the answer does not depend on PyTorch or on a CUDA toolkit being installed.
"""
from __future__ import annotations

import ctypes
import sys
from dataclasses import asdict, dataclass

from ..errors import VanexportError

TENSORRT_HINT = ("install the GPU extra: pip install 'vanexport[gpu]' (TensorRT's libraries come from "
                 "pypi.nvidia.com); on Jetson, TensorRT comes with JetPack (apt install python3-libnvinfer)")
DRIVER_HINT = "install the NVIDIA driver (on Jetson: flash JetPack) and check that `nvidia-smi` works"

AMPERE = (8, 0)  # compute capability of the first Ampere GPUs (HardwareCompatibilityLevel.AMPERE_PLUS)
# cuda.h
_CUDA_SUCCESS, _CUDA_ERROR_STUB_LIBRARY, _CUDA_ERROR_NO_DEVICE = 0, 34, 100
_ATTR_CC_MAJOR, _ATTR_CC_MINOR = 75, 76


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "8.6"
    driver_cuda_version: str = ""  # the newest CUDA version the driver supports, e.g. "12.4"
    index: int = 0

    @property
    def cc(self) -> tuple[int, int]:
        return parse_cc(self.compute_capability)

    def to_dict(self) -> dict:
        return asdict(self)


def parse_cc(cc: str) -> tuple[int, int]:
    major, _, minor = str(cc).partition(".")
    return int(major), int(minor or 0)


def import_tensorrt():
    """The installed `tensorrt` module, or a one-line VanexportError."""
    try:
        import tensorrt
    except ImportError as e:  # also raised when the package is there but libnvinfer cannot be loaded
        missing = "no 'tensorrt' Python package" if getattr(e, "name", None) == "tensorrt" else str(e).splitlines()[0]
        raise VanexportError(f"TensorRT is not installed ({missing})", TENSORRT_HINT) from e
    return tensorrt


def _load_libcuda():
    names = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise VanexportError("no NVIDIA driver (libcuda is not installed)", DRIVER_HINT)


def _error_name(lib, code: int) -> str:
    name = ctypes.c_char_p()
    if lib.cuGetErrorName(code, ctypes.byref(name)) == _CUDA_SUCCESS and name.value:
        return name.value.decode()
    return f"CUDA error {code}"


def cuda_gpu(index: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device `index`, straight from the driver."""
    lib = _load_libcuda()
    rc = lib.cuInit(0)
    if rc == _CUDA_ERROR_STUB_LIBRARY:
        raise VanexportError("no NVIDIA driver (only the CUDA toolkit's stub libcuda was found)", DRIVER_HINT)
    if rc == _CUDA_ERROR_NO_DEVICE:
        raise VanexportError("no CUDA device (the NVIDIA driver is installed but sees no GPU)",
                             "check `nvidia-smi` and CUDA_VISIBLE_DEVICES; run containers with --gpus all")
    if rc != _CUDA_SUCCESS:
        raise VanexportError(f"the NVIDIA driver cannot initialise CUDA ({_error_name(lib, rc)})",
                             "check `nvidia-smi`; after a driver update, reboot")
    count = ctypes.c_int(0)
    lib.cuDeviceGetCount(ctypes.byref(count))
    if not 0 <= index < count.value:
        raise VanexportError(f"no CUDA device {index} ({count.value} visible)",
                             f"choose a device from 0 to {count.value - 1}" if count.value else
                             "check `nvidia-smi` and CUDA_VISIBLE_DEVICES")
    device, major, minor, version = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    name = ctypes.create_string_buffer(256)
    lib.cuDeviceGet(ctypes.byref(device), index)
    lib.cuDeviceGetName(name, len(name), device)
    lib.cuDeviceGetAttribute(ctypes.byref(major), _ATTR_CC_MAJOR, device)
    lib.cuDeviceGetAttribute(ctypes.byref(minor), _ATTR_CC_MINOR, device)
    lib.cuDriverGetVersion(ctypes.byref(version))
    return GpuInfo(name.value.decode(errors="replace"), f"{major.value}.{minor.value}",
                   f"{version.value // 1000}.{version.value % 1000 // 10}", index)


def require_tensorrt(device: int = 0):
    """(tensorrt module, GpuInfo) or a one-line VanexportError naming what is missing. Call it before slow work."""
    trt = import_tensorrt()
    return trt, cuda_gpu(device)


def tensorrt_version(trt) -> str:
    return str(trt.__version__)
