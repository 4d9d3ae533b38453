"""What an engine is built with: a small record made from the CLI flags, checked before any slow work, and the
optimization profile it implies for a given ONNX input."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

from ..errors import VanexportError
from ..formats.names import PRECISIONS
from ..model.variants import check_img_size

# CLI spelling -> trt.HardwareCompatibilityLevel member
HW_COMPAT = {"none": "NONE", "ampere+": "AMPERE_PLUS", "same-cc": "SAME_COMPUTE_CAPABILITY"}
DEFAULT_BATCHES = (1, 8, 32)  # min, opt, max for a dynamic batch axis
OPT_LEVELS = range(0, 6)


@dataclass(frozen=True)
class BuildSettings:
    """Everything that changes the engine TensorRT builds (the timing cache only changes how fast it builds).

    Batch and image sizes left as None are resolved against the ONNX input by `profile_shapes`.
    """

    precision: str = "fp32"
    min_batch: int | None = None
    opt_batch: int | None = None
    max_batch: int | None = None
    img_size: int | None = None  # optimal H = W; default: the size the ONNX was exported at
    min_img_size: int | None = None  # only for an ONNX with dynamic H/W
    max_img_size: int | None = None
    workspace_gib: float | None = None  # None: TensorRT's default (all device memory)
    opt_level: int | None = None  # builder optimization level 0-5; None: TensorRT's default (3)
    hw_compat: str = "none"
    version_compatible: bool = False
    dla_core: int | None = None
    tf32: bool = False  # off, as in Polygraphy: FP32 engines then match PyTorch FP32 closely
    weak_typing: bool = False  # TensorRT 10 only: BuilderFlag.FP16/INT8 instead of a strongly typed network

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        if self.precision not in PRECISIONS:
            raise VanexportError(f"unknown precision '{self.precision}'", "use fp32, fp16 or int8")
        for name in ("min_batch", "opt_batch", "max_batch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise VanexportError(f"--{name.replace('_', '-')} {value} is not positive", "batch sizes start at 1")
        for name in ("img_size", "min_img_size", "max_img_size"):
            if getattr(self, name) is not None:
                check_img_size(getattr(self, name))
        if self.workspace_gib is not None and not self.workspace_gib > 0:
            raise VanexportError(f"--workspace {self.workspace_gib} GiB is not positive", "give e.g. --workspace 2")
        if self.opt_level is not None and self.opt_level not in OPT_LEVELS:
            raise VanexportError(f"--opt-level {self.opt_level} is out of range", "use 0 (fastest build) to 5 (slowest)")
        if self.hw_compat not in HW_COMPAT:
            raise VanexportError(f"unknown hardware compatibility '{self.hw_compat}'", "use none, ampere+ or same-cc")
        if self.dla_core is not None and self.dla_core < 0:
            raise VanexportError(f"--dla-core {self.dla_core} is negative", "DLA cores are numbered from 0")
        if self.dla_core is not None and self.hw_compat != "none":
            raise VanexportError("--dla-core and --hw-compat exclude each other",
                                 "DLA engines run only on the Jetson they were built on")
        if self.dla_core is not None and self.precision == "fp32":
            raise VanexportError("the DLA runs FP16 and INT8 networks only, not FP32",
                                 "pass --fp16 or --int8 with --dla-core")
        if self.weak_typing and self.precision == "fp32":
            raise VanexportError("--weak-typing needs --fp16 or --int8", "an FP32 engine is built the same either way")

    def with_precision(self, precision: str) -> "BuildSettings":
        return replace(self, precision=precision)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "BuildSettings":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def profile_shapes(self, input_shape: list, export_img_size: int) -> dict:
        """{"min", "opt", "max"} NCHW shapes for an ONNX input whose shape is `input_shape` (ints, or axis names
        for dynamic axes, as in the ONNX metadata). Flags that contradict a static axis are errors."""
        batch, _, height, width = input_shape
        if isinstance(batch, int):
            given = {v for v in (self.min_batch, self.opt_batch, self.max_batch) if v is not None}
            if given - {batch}:
                raise VanexportError(f"the ONNX file has a static batch of {batch}, so the engine cannot take "
                                     f"batch {max(given - {batch})}",
                                     "export with a dynamic batch (vanexport onnx without --batch) or drop the batch flags")
            b = (batch, batch, batch)
        elif self.dla_core is not None:  # DLA: no dynamic dimensions, min = opt = max
            given = {v for v in (self.min_batch, self.opt_batch, self.max_batch) if v is not None}
            if len(given) > 1:
                raise VanexportError(f"the DLA takes one batch size, not a range (got {sorted(given)})",
                                     "pass one of --min-batch/--opt-batch/--max-batch, or the same value to each")
            b = (given.pop() if given else 1,) * 3
        else:
            lo = self.min_batch or DEFAULT_BATCHES[0]
            hi = self.max_batch or max(DEFAULT_BATCHES[2], lo)
            opt = self.opt_batch or min(max(DEFAULT_BATCHES[1], lo), hi)
            if not lo <= opt <= hi:
                raise VanexportError(f"batch sizes must satisfy min <= opt <= max (got {lo}, {opt}, {hi})",
                                     "fix --min-batch / --opt-batch / --max-batch")
            b = (lo, opt, hi)
        if isinstance(height, int) and isinstance(width, int):
            given = {v for v in (self.img_size, self.min_img_size, self.max_img_size) if v is not None}
            if given - {height}:
                raise VanexportError(f"the ONNX file takes only {height}x{width} images, not {max(given - {height})}",
                                     "export with --dynamic-hw (or at that --img-size) or drop the size flags")
            hw = ((height, width),) * 3
        else:
            opt = self.img_size or export_img_size
            lo, hi = self.min_img_size or opt, self.max_img_size or opt
            if not lo <= opt <= hi:
                raise VanexportError(f"image sizes must satisfy min <= opt <= max (got {lo}, {opt}, {hi})",
                                     "fix --min-img-size / --img-size / --max-img-size")
            if self.dla_core is not None and lo != hi:
                raise VanexportError(f"the DLA takes one image size, not {lo}..{hi}",
                                     "drop --min-img-size/--max-img-size (or make them equal) with --dla-core")
            hw = ((lo, lo), (opt, opt), (hi, hi))
        return {k: [b[i], 3, *hw[i]] for i, k in enumerate(("min", "opt", "max"))}


def typing_mode(trt, settings: BuildSettings) -> str:
    """"strong" or "weak", by what the installed TensorRT can do (TensorRT 11 removed BuilderFlag.FP16/INT8)."""
    if not settings.weak_typing:
        return "strong"
    flag = "FP16" if settings.precision == "fp16" else "INT8"
    if not hasattr(trt.BuilderFlag, flag):
        raise VanexportError(f"TensorRT {trt.__version__} has no weak typing (BuilderFlag.{flag} was removed in 11)",
                             "drop --weak-typing: the strongly typed build from the converted ONNX is the way on 11")
    return "weak"


def network_flags(trt, mode: str) -> int:
    """create_network() flags. On TensorRT 10 strong typing is opt-in (STRONGLY_TYPED); where weak typing is gone
    (11) every network is strongly typed and that flag is deprecated, so it is left alone."""
    weak_typing_exists = hasattr(trt.BuilderFlag, "FP16")
    if mode == "strong" and weak_typing_exists and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def config_options(settings: BuildSettings, shapes: dict, input_name: str, mode: str,
                   workspace_bytes: int | None = None) -> dict:
    """What the builder configuration gets, as plain data (TensorRT enums still as member names; the builder
    resolves them against the installed TensorRT). Only what was asked for is set: TensorRT's own defaults stay
    for the rest, except TF32, which is off unless asked for (FP32 engines then match PyTorch FP32 closely)."""
    options = {
        "profile": {"input": input_name, **{k: tuple(shapes[k]) for k in ("min", "opt", "max")}},
        "tf32": settings.tf32,
    }
    if settings.workspace_gib is not None:
        workspace_bytes = int(settings.workspace_gib * 2**30)
    if workspace_bytes is not None:
        options["workspace_bytes"] = workspace_bytes
    if settings.opt_level is not None:
        options["builder_optimization_level"] = settings.opt_level
    if settings.hw_compat != "none":
        options["hardware_compatibility_level"] = HW_COMPAT[settings.hw_compat]
    if settings.version_compatible:
        options["version_compatible"] = True
    if mode == "weak":  # only reached on a TensorRT that still has these flags (see typing_mode)
        options["precision_flags"] = ["FP16", "INT8"] if settings.precision == "int8" else ["FP16"]
    if settings.dla_core is not None:
        options["dla_core"] = settings.dla_core
    return options


# Integrated GPUs (Jetson) have no memory of their own: a workspace of "all device memory" (TensorRT's default)
# is all of the system's. NVIDIA gives no number; DeepStream builds with 450 MiB. Ours: 1 GiB, or a quarter of the
# memory the kernel says is available, whichever is smaller. --workspace overrides it.
INTEGRATED_WORKSPACE_CAP = 2**30


def default_workspace_bytes(integrated: bool, available_bytes: int | None) -> int | None:
    """The workspace limit when --workspace is not given: TensorRT's own (None) on a discrete GPU, a cap on an
    integrated one."""
    if not integrated:
        return None
    if not available_bytes:
        return INTEGRATED_WORKSPACE_CAP
    return max(64 * 2**20, min(INTEGRATED_WORKSPACE_CAP, available_bytes // 4))


def hw_compat_problem(trt, settings: BuildSettings, gpu) -> tuple[str, str] | None:
    """Why this TensorRT or GPU cannot make the hardware-compatible plan asked for (None when it can)."""
    from ..machine import AMPERE

    if settings.hw_compat == "none":
        return None
    if gpu.integrated:
        # The TensorRT 8.6 developer guide: hardware compatibility "is not supported on NVIDIA DRIVE OS or
        # JetPack" (UNVERIFIED that the 10.x/11.x guides still say so: refused here all the same).
        return (f"--hw-compat {settings.hw_compat} is not supported on Jetson (JetPack): plans built on "
                f"{gpu.name} run only on its kind of module", "drop --hw-compat; build on each device instead")
    if settings.hw_compat == "ampere+" and gpu.cc < AMPERE:
        return (f"--hw-compat ampere+ needs an Ampere or newer GPU to build on; this {gpu.name} has compute "
                f"capability {gpu.compute_capability}", "build on an Ampere or newer GPU, or drop --hw-compat")
    if settings.hw_compat == "same-cc" and gpu.cc < (7, 5):
        return (f"--hw-compat same-cc needs a Turing or newer GPU to build on; this {gpu.name} has compute "
                f"capability {gpu.compute_capability}", "build on a Turing or newer GPU, or drop --hw-compat")
    member = HW_COMPAT[settings.hw_compat]
    if not hasattr(trt.HardwareCompatibilityLevel, member):  # SAME_COMPUTE_CAPABILITY is new in 10.9
        return (f"TensorRT {trt.__version__} has no --hw-compat {settings.hw_compat} "
                f"(HardwareCompatibilityLevel.{member} came with TensorRT 10.9)",
                "use --hw-compat ampere+, or TensorRT 10.9 or newer")
    return None


def dla_problem(tensorrt_version: str, gpu, system: str = "Linux") -> tuple[str, str] | None:
    """Why no DLA build can happen with this TensorRT on this GPU (None when one can). From NVIDIA's "Working
    with DLA" (TensorRT 11.4.1): 10.7 was the last 10.x release with DLA; 11.0 to 11.3 have none; 11.4.0 only on
    Windows on ARM; 11.4.1 and newer on Jetson AGX Orin with JetPack 7.2.2 or newer. JetPack 6 ships 10.3."""
    if not gpu.integrated:
        return (f"{gpu.name} is a discrete GPU: DLA cores are on Jetson modules (AGX Orin, Orin NX, Xavier)",
                "drop --dla-core on this machine")
    v = tuple(int(p) for p in re.findall(r"\d+", str(tensorrt_version))[:3])
    if (10, 8) <= v < (11, 0) or (11, 0) <= v < (11, 4) or (v[:2] == (11, 4) and v < (11, 4, 1)
                                                            and system != "Windows"):
        return (f"TensorRT {tensorrt_version} has no DLA support on this platform (10.7 was the last 10.x release "
                "with DLA; it is back in 11.4.1 on JetPack 7.2.2 or newer)",
                "build with the TensorRT of your JetPack (JetPack 6: 10.3), or drop --dla-core")
    return None
