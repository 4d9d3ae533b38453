"""Which backend runs a model on this machine, and why.

Order: a TensorRT plan whose manifest fits this machine (fastest precision first), else ONNX Runtime with its
CUDA provider, else the CPU backends in CPU_BACKENDS order (ONNX Runtime, OpenVINO where installed). On the CPU that
order is only the start: `by_measured_speed` reorders the CPU ways by the time each took on this very machine
(device/speed.py measures them on first use and caches the times), and drops an INT8 way slower than the FP32 file
on the same backend. Everything here is plain data and logic (no torch, no TensorRT or OpenVINO import), so the
choice is tested with manifests written for devices this machine is not, and with times given, not measured.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import VanexportError
from ..formats.engine_manifest import EngineManifest, compatibility_problem
from ..formats.names import RUNTIME_PRECISIONS
from ..machine import GpuInfo, PlatformInfo, cuda_gpu, host_platform, ort_providers

BACKENDS = ("tensorrt", "onnxruntime-cuda", "onnxruntime-cpu", "openvino")
GPU_PRECISIONS = ("int8", "fp16", "fp32")  # fastest first on a GPU
CPU_PRECISIONS = ("fp32", "fp16", "int8")  # ONNX Runtime's CPU provider runs FP32 fastest (FP16/Q-DQ are emulated)
# The CPU backends, fastest faithful (FP32) one first, as benchmarks/cpu_fastest.py measures them (each in its own
# process, rounds alternated; docs/benchmarks.md#the-fastest-faithful-cpu-path): ONNX Runtime with vanexport's
# session options is at least as fast as OpenVINO FP32 on the same file, and starts several times sooner.
CPU_BACKENDS = ("onnxruntime-cpu", "openvino")
OPENVINO_HINT = "pip install 'vanexport[openvino]'"


@dataclass(frozen=True)
class Device:
    """What this machine can run: TensorRT version, GPUs, ONNX Runtime providers, and the platform plans are
    tied to (None: not known, the platform check is skipped)."""

    tensorrt: str | None = None
    gpus: tuple[GpuInfo, ...] = ()
    ort_providers: tuple[str, ...] = ()
    platform: PlatformInfo | None = None
    openvino: str | None = None  # the installed openvino package's version

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    """A model file that could run: an ONNX file, or a plan with its manifest."""

    kind: str  # "onnx" | "plan"
    path: str
    precision: str
    manifest: EngineManifest | None = None
    validated: bool | None = None  # None: no validation recorded


@dataclass
class Choice:
    backend: str
    candidate: Candidate
    reason: str
    skipped: list[str] = field(default_factory=list)
    compute_precision: str | None = None  # what the backend computes in, when not the file's own (OpenVINO BF16)

    @property
    def precision(self) -> str:
        return self.compute_precision or self.candidate.precision

    def to_dict(self) -> dict:
        return {"backend": self.backend, "file": self.candidate.path, "precision": self.precision,
                "file_precision": self.candidate.precision, "reason": self.reason, "skipped": list(self.skipped)}


def plan_fits(manifest: EngineManifest, device: Device) -> tuple[bool, str]:
    """Can this machine load the plan? (yes/no, and the reason in a few words). The rules are the TensorRT
    loader's own (`formats.engine_manifest.compatibility_problem`)."""
    if device.tensorrt is None:
        return False, "TensorRT is not installed"
    if not device.gpus:
        return False, "no CUDA GPU"
    if manifest is None:
        return False, "it has no manifest"
    try:
        problem = compatibility_problem(manifest, device.tensorrt, device.gpus[0], device.platform)
    except (ValueError, TypeError) as e:
        return False, f"its manifest is incomplete ({e})"
    if problem:
        return False, problem[0]
    gpu = device.gpus[0]
    how = "Ampere+ plan" if manifest.tensorrt.hardware_compatibility == "ampere+" else \
        f"compute capability {manifest.gpu.compute_capability} matches"
    return True, f"TensorRT {device.tensorrt}, {how} on {gpu.name}"


def choose(candidates: list[Candidate], device: Device, backend: str = "auto",
           precision: str | None = None) -> list[Choice]:
    """Every way to run the model here, best first; each says why it is where it is.

    `backend` limits the choice to one of BACKENDS ("auto": all); `precision` to one precision: a file precision,
    or a precision OpenVINO computes an FP32 file in (RUNTIME_PRECISIONS). Files whose recorded validation failed
    are left out.
    """
    skipped: list[str] = []
    wanted = BACKENDS if backend == "auto" else (backend,)
    compute = precision if precision in RUNTIME_PRECISIONS else None
    if compute:  # BF16 is a way to run the FP32 file, and only OpenVINO has it
        if "openvino" not in wanted:
            skipped.append(f"{backend}: only OpenVINO computes an FP32 file in {compute.upper()}")
        wanted, precision = tuple(b for b in wanted if b == "openvino"), "fp32"
    pool = []
    for c in candidates:
        if precision and c.precision != precision:
            continue
        if c.validated is False:
            skipped.append(f"{Path(c.path).name}: failed its validation when the bundle was made")
            continue
        pool.append(c)
    choices: list[Choice] = []

    if "tensorrt" in wanted:
        for c in _by_precision([c for c in pool if c.kind == "plan"], GPU_PRECISIONS):
            ok, why = plan_fits(c.manifest, device)
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
    for name in (b for b in CPU_BACKENDS if b in wanted and onnx):
        if name == "onnxruntime-cpu":
            choices += [Choice(name, c, f"ONNX Runtime CPU provider on {Path(c.path).name}")
                        for c in _by_precision(onnx, CPU_PRECISIONS)]
        elif device.openvino is None:
            if backend == "openvino" or not choices:  # say so where OpenVINO was asked for or would have led
                skipped.append(f"OpenVINO: not installed ({OPENVINO_HINT})")
        else:
            how = f" in {compute.upper()} (this CPU's native lower precision)" if compute else ""
            choices += [Choice(name, c, f"OpenVINO {device.openvino} CPU on {Path(c.path).name}{how}",
                               compute_precision=compute) for c in _by_precision(onnx, CPU_PRECISIONS)]
    for ch in choices:
        ch.skipped = list(skipped)
    return choices


CPU_CHOICE_BACKENDS = ("onnxruntime-cpu", "openvino")


def speed_key(choice: Choice) -> tuple[str, str, str]:
    """What a measured time belongs to: (backend, precision it computes in, file)."""
    return choice.backend, choice.precision, choice.candidate.path


def way(choice: Choice) -> str:
    """"openvino INT8", or just the backend while a bare file's precision is not read yet."""
    known = choice.precision in RUNTIME_PRECISIONS or choice.precision in ("fp32", "fp16", "int8")
    return f"{choice.backend} {choice.precision.upper()}" if known else choice.backend


def by_measured_speed(choices: list[Choice], ms: dict[tuple[str, str, str], float]) -> list[Choice]:
    """`choices` with the CPU ways reordered fastest first by `ms` (milliseconds per call, by `speed_key`, measured
    on this machine); ways that run on a GPU keep their places in front. An INT8 way slower than the FP32 file on
    the same backend is dropped: INT8 is there to be faster, and is never chosen when it is not. CPU ways without a
    time keep their order, after the timed ones. The winner's reason says what was measured."""
    gpu = [c for c in choices if c.backend not in CPU_CHOICE_BACKENDS]
    cpu = [c for c in choices if c.backend in CPU_CHOICE_BACKENDS]
    fp32 = {c.backend: ms[speed_key(c)] for c in cpu if c.precision == "fp32" and speed_key(c) in ms}
    slower, dropped = set(), []
    for c in cpu:
        t, base = ms.get(speed_key(c)), fp32.get(c.backend)
        if c.precision == "int8" and t is not None and base is not None and t >= base:
            slower.add(speed_key(c))
            dropped.append(f"{Path(c.candidate.path).name} on {c.backend}: INT8 measured {t:.2f} ms here, not faster "
                           f"than FP32 on the same backend ({base:.2f} ms)")
    kept = [c for c in cpu if speed_key(c) not in slower]
    order = {id(c): i for i, c in enumerate(kept)}
    kept.sort(key=lambda c: (speed_key(c) not in ms, ms.get(speed_key(c), 0.0), order[id(c)]))
    timed = [c for c in kept if speed_key(c) in ms]
    if timed:
        best = timed[0]
        others = ", ".join(f"{way(c)} {ms[speed_key(c)]:.2f} ms" for c in timed[1:3])
        best.reason += (f"; fastest measured on this machine: {ms[speed_key(best)]:.2f} ms per call"
                        + (f" (next: {others})" if others else ""))
    out = gpu + kept
    for c in out:
        c.skipped = list(c.skipped) + dropped
    return out


def _by_precision(cands: list[Candidate], order: tuple[str, ...]) -> list[Candidate]:
    rank = {p: i for i, p in enumerate(order)}
    return sorted(cands, key=lambda c: rank.get(c.precision, len(order)))


def probe_device() -> Device:
    """This machine, without PyTorch: TensorRT's version, the first CUDA GPU (from the driver), ORT providers, the
    platform, and OpenVINO's version (from its package metadata: importing it costs a quarter of a second)."""
    return Device(_tensorrt_version(), tuple(_gpus()), tuple(ort_providers()), host_platform(), _openvino_version())


def _openvino_version() -> str | None:
    try:
        return importlib.metadata.version("openvino")
    except importlib.metadata.PackageNotFoundError:
        return None


def _tensorrt_version() -> str | None:
    try:
        import tensorrt  # works without a GPU once its libraries are present

        return str(tensorrt.__version__)
    except Exception:
        return None


def _gpus() -> list[GpuInfo]:
    try:
        return [cuda_gpu(0)]  # the device the TensorRT backend runs on
    except VanexportError:
        return []
