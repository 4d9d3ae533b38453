"""What a benchmark can run: one Case per (variant, batch, backend, device, precision), and why a machine cannot.

Adding a backend or precision is one entry in TARGETS plus, where it needs an artifact, one method in
`artifacts.Artifacts`; the timing worker, the table, JSON, CSV and plot pick the row up from there.
"""
from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field

from ..errors import VanexportError
from ..formats.names import PRECISIONS as FILE_PRECISIONS
from ..formats.names import CPU_INT8_TAG, RUNTIME_PRECISIONS

BACKEND_ALIASES = {"torch": "torch", "pytorch": "torch", "ort": "onnxruntime", "onnxruntime": "onnxruntime",
                   "ov": "openvino", "openvino": "openvino", "trt": "tensorrt", "tensorrt": "tensorrt"}
PRECISIONS = FILE_PRECISIONS + RUNTIME_PRECISIONS
DEVICES = ("cpu", "cuda")
CPU_EP, CUDA_EP, TRT_EP = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
_SHORT_EP = {CPU_EP: "cpu", CUDA_EP: "cuda", TRT_EP: "trt-ep"}


@dataclass(frozen=True)
class Target:
    backend: str  # torch | onnxruntime | openvino | tensorrt
    device: str  # cpu | cuda
    precision: str  # fp32 | fp16 | int8 | bf16 (what it computes in)
    provider: str | None = None  # ONNX Runtime execution provider
    form: str | None = None  # INT8: "cpu" runs the file made for the CPU (formats.names.INT8_FORMS); else TensorRT's

    @property
    def label(self) -> str:
        where = _SHORT_EP[self.provider] if self.provider else self.device
        return f"{self.backend} {where} {self.precision}" + (f"-{self.form}" if self.form else "")

    @property
    def artifact(self) -> str | None:
        """The file this target runs: an ONNX of its precision, a TensorRT plan, or nothing (PyTorch)."""
        return {"torch": None, "onnxruntime": "onnx", "openvino": "onnx", "tensorrt": "plan"}[self.backend]

    @property
    def file_precision(self) -> str:
        """The precision of the file it runs: BF16 runs the FP32 file; the CPU INT8 form has a file of its own."""
        if self.form == "cpu":
            return CPU_INT8_TAG
        return "fp32" if self.precision in RUNTIME_PRECISIONS else self.precision


# Every row a benchmark knows, in table order. PyTorch eager has no INT8 path, and FP16 only on CUDA (autocast);
# OpenVINO runs the FP32 file in FP32 and in the CPU's native BF16, and both INT8 files; ONNX Runtime's CPU provider
# runs the CPU INT8 file too (its row shows it slower than FP32 there): other combinations are not targets at all,
# rather than rows that are always skipped.
TARGETS: tuple[Target, ...] = (
    Target("torch", "cpu", "fp32"),
    Target("torch", "cuda", "fp32"),
    Target("torch", "cuda", "fp16"),
    *(Target("onnxruntime", "cpu", p, CPU_EP) for p in FILE_PRECISIONS),
    Target("onnxruntime", "cpu", "int8", CPU_EP, form="cpu"),
    Target("openvino", "cpu", "fp32"),
    Target("openvino", "cpu", "bf16"),
    Target("openvino", "cpu", "int8"),
    Target("openvino", "cpu", "int8", form="cpu"),
    *(Target("onnxruntime", "cuda", p, CUDA_EP) for p in FILE_PRECISIONS),
    *(Target("onnxruntime", "cuda", p, TRT_EP) for p in FILE_PRECISIONS),
    *(Target("tensorrt", "cuda", p) for p in FILE_PRECISIONS),
)


@dataclass(frozen=True)
class Case:
    variant: str
    batch: int
    target: Target

    @property
    def label(self) -> str:
        return f"{self.variant} bs{self.batch} {self.target.label}"

    def to_dict(self) -> dict:
        return {"variant": self.variant, "batch": self.batch, **asdict(self.target)}


@dataclass
class Machine:
    """What this machine can run, probed once (cheaply: nothing is loaded onto a GPU)."""

    cuda_devices: int = 0
    ort_providers: list[str] = field(default_factory=list)
    tensorrt: bool = False  # the tensorrt Python package
    openvino: list[str] | None = None  # what OpenVINO computes in on this CPU ("fp32", "bf16", ...); None: no OpenVINO

    @classmethod
    def probe(cls) -> "Machine":
        from ..machine import ort_providers

        cuda = 0
        try:
            import torch

            cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
        except ImportError:
            pass
        return cls(cuda_devices=cuda, ort_providers=ort_providers(), tensorrt=_importable("tensorrt"),
                   openvino=_openvino_precisions())


def _openvino_precisions() -> list[str] | None:
    if not _importable("openvino"):
        return None
    from ..runtime.openvino_backend import cpu_precisions

    try:
        return list(cpu_precisions())
    except Exception:  # installed but broken: its rows fail with the real error
        return ["fp32"]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def skip_reason(target: Target, machine: Machine, calib) -> str | None:
    """Why this machine cannot run `target` (None: it can try). Artifact problems are found later, per file."""
    if target.device == "cuda" and not machine.cuda_devices:
        return "no CUDA GPU on this machine"
    if target.backend == "onnxruntime" and target.provider not in machine.ort_providers:
        hint = "install the GPU build (onnxruntime-gpu) instead of onnxruntime" if target.provider != CPU_EP else \
            "reinstall onnxruntime"
        return f"ONNX Runtime has no {target.provider}: {hint}"
    if target.backend == "tensorrt":
        if not machine.tensorrt:
            return "TensorRT is not installed: pip install 'vanexport[gpu]' (JetPack ships it on Jetson)"
    if target.backend == "openvino":
        if machine.openvino is None:
            return "OpenVINO is not installed: pip install 'vanexport[openvino]'"
        if target.precision not in machine.openvino:
            return (f"this CPU has no native {target.precision.upper()} (OpenVINO computes in "
                    f"{', '.join(p.upper() for p in machine.openvino)})")
    if target.precision == "int8" and target.backend != "torch" and calib is None:
        return "INT8 needs calibration images: pass --calib DIR"
    if target.form == "cpu" and not _importable("nncf"):
        return "the CPU INT8 file is made with NNCF, which is not installed: pip install 'vanexport[cpu-int8]'"
    return None


def parse_list(values, allowed: dict | tuple, what: str) -> list[str]:
    """`("torch,ort", "trt")` -> canonical names, in first-seen order; unknown names are a user error."""
    names = allowed if isinstance(allowed, dict) else {a: a for a in allowed}
    out = []
    for v in [values] if isinstance(values, str) else values or ():
        for item in str(v).split(","):
            key = item.strip().lower()
            if not key:
                continue
            if key not in names:
                raise VanexportError(f"unknown {what} '{item.strip()}'", f"choose from {', '.join(dict.fromkeys(names))}")
            if names[key] not in out:
                out.append(names[key])
    return out


def plan_cases(variants: list[str], batches: list[int], backends: list[str] | None, precisions: list[str] | None,
               device: str | None) -> list[Case]:
    """Every case the user asked for, in the order they are timed: variant, then batch, then TARGETS order."""
    chosen = [t for t in TARGETS
              if (not backends or t.backend in backends) and (not precisions or t.precision in precisions)
              and (device is None or t.device == device)]
    if not chosen:
        raise VanexportError("no benchmark matches these --backends/--precision/--device",
                             "PyTorch eager runs FP32 (and FP16 on CUDA), BF16 only OpenVINO; drop a filter")
    return [Case(v, b, t) for v in variants for b in batches for t in chosen]
