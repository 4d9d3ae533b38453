"""Which backend runs a model on this machine, and why.

Order: a TensorRT plan whose manifest fits this machine (fastest precision first), else ONNX Runtime with its
CUDA provider, else ONNX Runtime on the CPU. Everything here is plain data and logic (no torch, no TensorRT
import), so the choice is tested with manifests written for devices this machine is not.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

BACKENDS = ("tensorrt", "onnxruntime-cuda", "onnxruntime-cpu")
GPU_PRECISIONS = ("int8", "fp16", "fp32")  # fastest first on a GPU
CPU_PRECISIONS = ("fp32", "fp16", "int8")  # ONNX Runtime's CPU provider runs FP32 fastest (FP16/Q-DQ are emulated)


@dataclass(frozen=True)
class GPU:
    name: str
    compute_capability: str  # "8.7"


@dataclass(frozen=True)
class Device:
    """What this machine can run: TensorRT version, GPUs, ONNX Runtime providers."""

    tensorrt: str | None = None
    gpus: tuple[GPU, ...] = ()
    ort_providers: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    """A model file that could run: an ONNX file, or a plan with its manifest."""

    kind: str  # "onnx" | "plan"
    path: str
    precision: str
    manifest: dict | None = None
    validated: bool | None = None  # None: no validation recorded


@dataclass
class Choice:
    backend: str
    candidate: Candidate
    reason: str
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"backend": self.backend, "file": self.candidate.path, "precision": self.candidate.precision,
                "reason": self.reason, "skipped": list(self.skipped)}


def engine_summary(manifest: dict) -> dict:
    """The facts of an engine manifest that decide where a plan may run (keys as `vanexport trt` writes them)."""
    gpu = manifest.get("gpu") or {}
    return {
        "precision": manifest.get("precision"),
        "tensorrt_version": manifest.get("tensorrt_version"),
        "version_compatible": bool(manifest.get("version_compatible", False)),
        "hardware_compatibility": (manifest.get("hardware_compatibility") or "none").lower(),
        "gpu_name": gpu.get("name"),
        "compute_capability": str(gpu.get("compute_capability")) if gpu.get("compute_capability") else None,
        "onnx_sha256": manifest.get("onnx_sha256"),
        "plan_sha256": manifest.get("plan_sha256"),
    }


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def _cc(v: str) -> tuple[int, int]:
    major, _, minor = str(v).partition(".")
    return int(major), int(minor or 0)


def plan_fits(manifest: dict, device: Device) -> tuple[bool, str]:
    """Can this machine load the plan? (yes/no, and the reason in a few words)."""
    e = engine_summary(manifest)
    if device.tensorrt is None:
        return False, "TensorRT is not installed"
    if not device.gpus:
        return False, "no CUDA GPU"
    built, here = e["tensorrt_version"], device.tensorrt
    if not built:
        return False, "its manifest does not say which TensorRT built it"
    if e["version_compatible"]:
        if _version(here)[0] != _version(built)[0] or _version(here) < _version(built):
            return False, f"version-compatible plan from TensorRT {built} needs TensorRT {_version(built)[0]}.x >= {built}, this machine has {here}"
    elif _version(here) != _version(built):
        return False, f"built with TensorRT {built}, this machine has {here}"
    cc, gpu = e["compute_capability"], device.gpus[0]
    if not cc:
        return False, "its manifest does not say which GPU architecture it was built for"
    level = e["hardware_compatibility"].replace("_", "-")
    if level in ("ampere+", "ampere-plus"):
        if _cc(gpu.compute_capability) < (8, 0):
            return False, f"hardware-compatible (Ampere+) plan, but {gpu.name} is sm_{gpu.compute_capability}"
        return True, f"TensorRT {here}, Ampere+ plan on {gpu.name}"
    if _cc(cc) != _cc(gpu.compute_capability):
        return False, f"built for compute capability {cc} ({e['gpu_name'] or '?'}), this GPU is {gpu.name} ({gpu.compute_capability})"
    return True, f"TensorRT {here}, compute capability {cc} matches {gpu.name}"


def choose(candidates: list[Candidate], device: Device, backend: str = "auto",
           precision: str | None = None) -> list[Choice]:
    """Every way to run the model here, best first; each says why it is where it is.

    `backend` limits the choice to one of BACKENDS ("auto": all); `precision` to one precision. Files whose
    recorded validation failed are left out.
    """
    skipped: list[str] = []
    pool = []
    for c in candidates:
        if precision and c.precision != precision:
            continue
        if c.validated is False:
            skipped.append(f"{Path(c.path).name}: failed its validation when the bundle was made")
            continue
        pool.append(c)
    wanted = BACKENDS if backend == "auto" else (backend,)
    choices: list[Choice] = []

    if "tensorrt" in wanted:
        for c in _by_precision([c for c in pool if c.kind == "plan"], GPU_PRECISIONS):
            ok, why = plan_fits(c.manifest or {}, device)
            if ok:
                choices.append(Choice("tensorrt", c, f"TensorRT plan {Path(c.path).name} fits: {why}"))
            else:
                skipped.append(f"{Path(c.path).name}: {why}")
    onnx = [c for c in pool if c.kind == "onnx"]
    if "onnxruntime-cuda" in wanted and onnx:
        if "CUDAExecutionProvider" in device.ort_providers:
            for c in _by_precision(onnx, GPU_PRECISIONS[1:] + GPU_PRECISIONS[:1]):  # Q/DQ INT8 last on ORT CUDA
                choices.append(Choice("onnxruntime-cuda", c, f"ONNX Runtime CUDA provider on {Path(c.path).name}"))
        else:
            skipped.append("ONNX Runtime CUDA: this ONNX Runtime has no CUDA provider (install onnxruntime-gpu)")
    if "onnxruntime-cpu" in wanted:
        for c in _by_precision(onnx, CPU_PRECISIONS):
            choices.append(Choice("onnxruntime-cpu", c, f"ONNX Runtime CPU provider on {Path(c.path).name}"))
    for ch in choices:
        ch.skipped = list(skipped)
    return choices


def _by_precision(cands: list[Candidate], order: tuple[str, ...]) -> list[Candidate]:
    rank = {p: i for i, p in enumerate(order)}
    return sorted(cands, key=lambda c: rank.get(c.precision, len(order)))


def probe_device() -> Device:
    """This machine, without PyTorch: TensorRT's version, GPUs (nvidia-smi or cuda-python), ORT providers."""
    return Device(_tensorrt_version(), tuple(_gpus()), tuple(_ort_providers()))


def _tensorrt_version() -> str | None:
    try:
        import tensorrt  # works without a GPU once its libraries are present

        return str(tensorrt.__version__)
    except Exception:
        return None


def _ort_providers() -> list[str]:
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except Exception:
        return []


def _gpus() -> list[GPU]:
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=20, check=True).stdout
            gpus = [GPU(*[s.strip() for s in line.rsplit(",", 1)]) for line in out.splitlines() if "," in line]
            if gpus:
                return gpus
        except (OSError, subprocess.SubprocessError, TypeError):
            pass
    try:  # Jetson has no full nvidia-smi; NVIDIA's cuda-python reads the properties from the CUDA runtime
        from cuda.bindings import runtime as cudart

        err, n = cudart.cudaGetDeviceCount()
        out = []
        for i in range(n if int(err) == 0 else 0):
            err, p = cudart.cudaGetDeviceProperties(i)
            if int(err) == 0:
                name = p.name.decode(errors="replace").rstrip("\x00") if isinstance(p.name, bytes) else str(p.name)
                out.append(GPU(name, f"{p.major}.{p.minor}"))
        return out
    except Exception:
        return []
