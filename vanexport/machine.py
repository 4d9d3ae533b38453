"""What this machine has: packages, ONNX Runtime providers, NVIDIA GPUs and TensorRT, and what each command needs.

GPUs are asked through the CUDA driver API (libcuda, via ctypes), which every machine with the driver has, so the
answer needs neither PyTorch nor a CUDA toolkit. TensorRT problems are checked in the order a user fixes them: the
TensorRT package, the NVIDIA driver, a CUDA device; each is one line saying what is missing and how to get it.
"""
from __future__ import annotations

import ctypes
import importlib.metadata
import os
import platform
import re
import sys
from dataclasses import asdict, dataclass

from .errors import VanexportError

TENSORRT_HINT = ("install the GPU extra: pip install 'vanexport[gpu]' (TensorRT's libraries come from "
                 "pypi.nvidia.com); on Jetson, TensorRT comes with JetPack (apt install python3-libnvinfer)")
DRIVER_HINT = "install the NVIDIA driver (on Jetson: flash JetPack) and check that `nvidia-smi` works"

EXPORT_HINT = "pip install 'vanexport[export]' (a device install has only what running a bundle needs)"
# The export extra's packages, by the name they are imported under -> the name pip installs
EXPORT_PACKAGES = {"torch": "torch", "onnx": "onnx", "onnxsim": "onnxsim", "onnxscript": "onnxscript",
                   "polygraphy": "polygraphy", "huggingface_hub": "huggingface_hub", "skimage": "scikit-image"}

AMPERE = (8, 0)  # compute capability of the first Ampere GPUs (HardwareCompatibilityLevel.AMPERE_PLUS)
# cuda.h
CUDA_SUCCESS, _CUDA_ERROR_STUB_LIBRARY, _CUDA_ERROR_NO_DEVICE = 0, 34, 100
_ATTR_CC_MAJOR, _ATTR_CC_MINOR, _ATTR_INTEGRATED = 75, 76, 18


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "8.6"
    driver_cuda_version: str = ""  # the newest CUDA version the driver supports, e.g. "12.4"
    index: int = 0
    integrated: bool = False  # shares system memory with the CPU (Jetson): CU_DEVICE_ATTRIBUTE_INTEGRATED

    @property
    def cc(self) -> tuple[int, int]:
        return parse_cc(self.compute_capability)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PlatformInfo:
    """The host a plan was built on: TensorRT plans do not move across operating systems or CPU architectures
    (NVIDIA's support matrix), and JetPack's TensorRT is a package of its own."""

    system: str = ""  # platform.system(): "Linux", "Windows"
    machine: str = ""  # platform.machine(): "x86_64", "aarch64"
    l4t: str = ""  # Jetson Linux release ("R36.4.3") from /etc/nv_tegra_release; "" elsewhere

    def describe(self) -> str:
        return f"{self.system} {self.machine}" + (f" (Jetson Linux {self.l4t})" if self.l4t else "")

    def to_dict(self) -> dict:
        return asdict(self)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, e.g. a container's share), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parse_l4t_release(text: str) -> str:
    """'# R36 (release), REVISION: 4.3, GCID: ...' -> 'R36.4.3' ('' when the text is not that)."""
    major = re.search(r"#\s*R(\d+)\s*\(release\)", text)
    revision = re.search(r"REVISION:\s*([\d.]+)", text)
    if not major:
        return ""
    return f"R{major.group(1)}" + (f".{revision.group(1).rstrip('.')}" if revision else "")


def host_platform(release_file: str = "/etc/nv_tegra_release") -> PlatformInfo:
    try:
        l4t = parse_l4t_release(open(release_file, encoding="utf-8", errors="replace").read(4096))
    except OSError:
        l4t = ""
    return PlatformInfo(platform.system(), platform.machine(), l4t)


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


def error_name(lib, code: int) -> str:
    """CUDA_ERROR_OUT_OF_MEMORY for a driver API result code (cuGetErrorName)."""
    name = ctypes.c_char_p()
    if lib.cuGetErrorName(code, ctypes.byref(name)) == CUDA_SUCCESS and name.value:
        return name.value.decode()
    return f"CUDA error {code}"


def driver():
    """libcuda, initialised, or a one-line VanexportError saying why not."""
    lib = _load_libcuda()
    rc = lib.cuInit(0)
    if rc == _CUDA_ERROR_STUB_LIBRARY:
        raise VanexportError("no NVIDIA driver (only the CUDA toolkit's stub libcuda was found)", DRIVER_HINT)
    if rc == _CUDA_ERROR_NO_DEVICE:
        raise VanexportError("no CUDA device (the NVIDIA driver is installed but sees no GPU)",
                             "check `nvidia-smi` and CUDA_VISIBLE_DEVICES; run containers with --gpus all")
    if rc != CUDA_SUCCESS:
        raise VanexportError(f"the NVIDIA driver cannot initialise CUDA ({error_name(lib, rc)})",
                             "check `nvidia-smi`; after a driver update, reboot")
    return lib


def _device_count(lib) -> int:
    count = ctypes.c_int(0)
    lib.cuDeviceGetCount(ctypes.byref(count))
    return count.value


def device_handle(lib, index: int) -> ctypes.c_int:
    """The driver's CUdevice for device `index`, or a one-line VanexportError when there is no such device."""
    count = _device_count(lib)
    if not 0 <= index < count:
        raise VanexportError(f"no CUDA device {index} ({count} visible)",
                             f"choose a device from 0 to {count - 1}" if count else
                             "check `nvidia-smi` and CUDA_VISIBLE_DEVICES")
    device = ctypes.c_int()
    lib.cuDeviceGet(ctypes.byref(device), ctypes.c_int(index))
    return device


def cuda_gpu(index: int = 0) -> GpuInfo:
    """Name, compute capability and kind (integrated or discrete) of CUDA device `index`, from the driver."""
    lib = driver()
    device = device_handle(lib, index)
    major, minor, integrated, version = ctypes.c_int(), ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    name = ctypes.create_string_buffer(256)
    lib.cuDeviceGetName(name, len(name), device)
    lib.cuDeviceGetAttribute(ctypes.byref(major), _ATTR_CC_MAJOR, device)
    lib.cuDeviceGetAttribute(ctypes.byref(minor), _ATTR_CC_MINOR, device)
    lib.cuDeviceGetAttribute(ctypes.byref(integrated), _ATTR_INTEGRATED, device)
    lib.cuDriverGetVersion(ctypes.byref(version))
    return GpuInfo(name.value.decode(errors="replace"), f"{major.value}.{minor.value}",
                   f"{version.value // 1000}.{version.value % 1000 // 10}", index, bool(integrated.value))


def gpu_memory_bytes(index: int = 0) -> int:
    """Total memory of CUDA device `index` (cuDeviceTotalMem_v2)."""
    lib = driver()
    total = ctypes.c_size_t()
    lib.cuDeviceTotalMem_v2(ctypes.byref(total), device_handle(lib, index))
    return int(total.value)


def missing_export_package(e: BaseException) -> VanexportError | None:
    """The one-line error for an import of a package of the `export` extra that is not installed (a device
    install has none of them); None for any other exception."""
    if not isinstance(e, ImportError):
        return None
    name = (getattr(e, "name", None) or "").split(".")[0]
    if name not in EXPORT_PACKAGES:
        return None
    return VanexportError(f"{EXPORT_PACKAGES[name]} is not installed: exporting, converting and validating need "
                          "the export extra (PyTorch, ONNX, Polygraphy)", EXPORT_HINT)


def require_tensorrt(device: int = 0):
    """(tensorrt module, GpuInfo) or a one-line VanexportError naming what is missing. Call it before slow work."""
    trt = import_tensorrt()
    return trt, cuda_gpu(device)


def tensorrt_version(trt) -> str:
    return str(trt.__version__)


PACKAGES = ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxsim", "onnxscript", "polygraphy", "tensorrt",
            "nvidia-modelopt", "openvino", "numpy", "pillow", "click", "rich", "tritonclient")
# What each command needs beyond the core (numpy, pillow, click, rich). A command is usable when all are present.
NEEDS = {
    "onnx": ("torch", "onnx", "onnxruntime|onnxruntime-gpu", "onnxsim", "polygraphy"),
    "validate": ("torch", "onnx", "onnxruntime|onnxruntime-gpu", "polygraphy"),
    "quantize": ("torch", "onnx", "onnxruntime|onnxruntime-gpu", "pillow", "polygraphy"),  # torch: the check
    "sensitivity": ("onnx", "onnxruntime|onnxruntime-gpu", "pillow"),
    "trt": ("torch", "onnx", "polygraphy", "tensorrt"),  # and a CUDA GPU with its driver
    "trt --bundle": ("tensorrt",),  # on the device: no PyTorch, no onnx, no Polygraphy
    "inspect": ("onnx",),  # TensorRT only for a plan's per-layer table
    "bundle": ("torch", "onnx", "onnxruntime|onnxruntime-gpu", "polygraphy"),
    "unpack": (),
    "predict": ("onnxruntime|onnxruntime-gpu|openvino|tensorrt", "pillow"),  # no torch: what a device needs
    "triton": ("tritonclient",),  # Triton's model-config schema
    "deepstream": (),  # --images (the crop's measured agreement) also needs ONNX Runtime
    "bench": ("torch", "onnx", "onnxruntime|onnxruntime-gpu", "onnxsim"),
    "info": (),
}


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    if out["tensorrt"] is None:  # JetPack installs TensorRT without pip metadata
        try:
            import tensorrt  # noqa: F401

            out["tensorrt"] = tensorrt.__version__
        except Exception:
            pass
    return out


def available_memory_bytes() -> int | None:
    """Memory the kernel says a new allocation can get without swapping (MemAvailable); None where unknown."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpus() -> list[dict]:
    """Every CUDA device the driver sees (empty without a driver or a GPU)."""
    try:
        count = _device_count(driver())
    except VanexportError:
        return []
    out = []
    for i in range(count):
        g = cuda_gpu(i)
        out.append({"index": i, "name": g.name, "compute_capability": g.compute_capability,
                    "memory_gib": round(gpu_memory_bytes(i) / 2**30, 1), "integrated": g.integrated})
    return out


def ort_providers() -> list[str]:
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except Exception:
        return []


def environment_info() -> dict:
    versions = package_versions()
    problems = []
    if versions["onnxruntime"] and versions["onnxruntime-gpu"]:
        problems.append("onnxruntime and onnxruntime-gpu are both installed and share one folder: "
                        "uninstall both, then install only one")
    if versions["onnxruntime-gpu"]:
        problems += gpu_stack_problems(gpu_stack_facts(versions))
    commands = {}
    for cmd, needs in NEEDS.items():
        missing = [n.split("|")[0] for n in needs if not any(versions.get(alt) for alt in n.split("|"))]
        commands[cmd] = {"ok": not missing, "missing": missing}
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "packages": versions,
        "onnxruntime_providers": ort_providers(),
        "gpus": gpus(),
        "commands": commands,
        "problems": problems,
    }


# The GPU stack: does onnxruntime-gpu's TensorRT provider fit the installed TensorRT, and can its CUDA provider
# find the CUDA libraries it links? Facts are gathered in `gpu_stack_facts` (files and versions only: nothing is
# initialised); `gpu_stack_problems` judges them, so the judgement is tested with facts made up on a CPU machine.
ORT_PROVIDER_LIBRARIES = {"tensorrt": "libonnxruntime_providers_tensorrt.so", "cuda": "libonnxruntime_providers_cuda.so"}
GPU_SET_HINT = "make setup-gpu (constraints/gpu.txt: TensorRT 10 with onnxruntime-gpu)"
CUDA_LIBS_HINT = ("pip install 'onnxruntime-gpu[cuda,cudnn]' (in the same CUDA major as the wheel), or install "
                  "CUDA and cuDNN system-wide")


@dataclass(frozen=True)
class GpuStackFacts:
    tensorrt: str | None = None  # installed TensorRT version
    onnxruntime_gpu: str | None = None  # installed onnxruntime-gpu version
    ort_tensorrt_needs: tuple[str, ...] = ()  # DT_NEEDED of ONNX Runtime's TensorRT provider library
    ort_cuda_needs: tuple[str, ...] = ()  # DT_NEEDED of its CUDA provider library
    unfound: tuple[str, ...] = ()  # of the CUDA libraries those link, the ones found nowhere


def elf_needed(path) -> list[str]:
    """The DT_NEEDED entries (the sonames a shared library links) of a 64-bit little-endian ELF file, from its
    dynamic section; [] for anything else. Reads section headers only: no loading, no dependencies."""
    import struct

    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4:6] != b"\x02\x01":  # ELFCLASS64, ELFDATA2LSB
        return []
    try:
        return _dynamic_needed(data)
    except (struct.error, IndexError, ValueError, UnicodeDecodeError):  # a truncated or damaged file
        return []


def _dynamic_needed(data: bytes) -> list[str]:
    import struct

    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    out = []
    for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
        if sh_type != 6:  # SHT_DYNAMIC
            continue
        strtab = sections[link][4]
        for pos in range(offset, offset + size, entsize or 16):
            tag, value = struct.unpack_from("<qQ", data, pos)
            if tag == 0:  # DT_NULL
                break
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", strtab + value)
                out.append(data[strtab + value:end].decode())
    return out


def _is_cuda_library(soname: str) -> bool:
    """The CUDA toolkit and cuDNN libraries a provider links (not the driver's libcuda, not TensorRT's)."""
    return soname.startswith(("libcublas", "libcudnn", "libcudart", "libcurand", "libcufft", "libnvrtc"))


def _findable(soname: str) -> bool:
    """Whether the dynamic loader finds `soname`, or it lies in an nvidia-* wheel where
    onnxruntime.preload_dlls() (and PyTorch) load it from."""
    import glob

    try:
        ctypes.CDLL(soname)
        return True
    except OSError:
        pass
    return any(glob.glob(os.path.join(p, "nvidia", "**", soname), recursive=True)
               for p in sys.path if os.path.isdir(os.path.join(p, "nvidia")))


def gpu_stack_facts(versions: dict[str, str | None] | None = None) -> GpuStackFacts:
    """What `gpu_stack_problems` judges, read from this environment (nothing is imported but importlib)."""
    import importlib.util

    versions = versions or package_versions()
    needs = {}
    spec = importlib.util.find_spec("onnxruntime") if versions.get("onnxruntime-gpu") else None
    if spec and spec.origin:
        capi = os.path.join(os.path.dirname(spec.origin), "capi")
        for provider, lib in ORT_PROVIDER_LIBRARIES.items():
            path = os.path.join(capi, lib)
            needs[provider] = tuple(elf_needed(path)) if os.path.isfile(path) else ()
    cuda_libs = sorted({n for names in needs.values() for n in names if _is_cuda_library(n)})
    return GpuStackFacts(versions.get("tensorrt"), versions.get("onnxruntime-gpu"), needs.get("tensorrt", ()),
                         needs.get("cuda", ()), tuple(n for n in cuda_libs if not _findable(n)))


def _soname_major(needs: tuple[str, ...], stem: str) -> int | None:
    """10 for 'libnvinfer.so.10' among `needs` (stem 'libnvinfer.so.')."""
    for name in needs:
        if name.startswith(stem) and name[len(stem):].isdigit():
            return int(name[len(stem):])
    return None


def ort_tensorrt_problem(facts: GpuStackFacts) -> str | None:
    """Why ONNX Runtime's TensorRT provider cannot load with the installed TensorRT (built for another major)."""
    wanted = _soname_major(facts.ort_tensorrt_needs, "libnvinfer.so.")
    if not facts.tensorrt or wanted is None or _version_major(facts.tensorrt) == wanted:
        return None
    return (f"onnxruntime-gpu {facts.onnxruntime_gpu}'s TensorRT provider needs libnvinfer.so.{wanted} "
            f"(TensorRT {wanted}) but TensorRT {facts.tensorrt} is installed: ONNX Runtime cannot use "
            f"TensorRT here (its CUDA provider can); for both: {GPU_SET_HINT}")


def cuda_library_problem(facts: GpuStackFacts) -> str | None:
    """Which CUDA libraries onnxruntime-gpu's providers link that are nowhere to be found."""
    if not facts.unfound:
        return None
    return (f"onnxruntime-gpu {facts.onnxruntime_gpu}'s CUDA providers cannot load: "
            f"{', '.join(facts.unfound)} not found; {CUDA_LIBS_HINT}")


def gpu_stack_problems(facts: GpuStackFacts) -> list[str]:
    """One line per reason the GPU stack cannot work as installed."""
    return [p for p in (ort_tensorrt_problem(facts), cuda_library_problem(facts)) if p]


def _version_major(version: str) -> int | None:
    head = str(version).split(".")[0]
    return int(head) if head.isdigit() else None
