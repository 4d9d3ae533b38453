"""What an engine is built with: a small record made from the CLI flags, checked before any slow work, and the
optimization profile it implies for a given ONNX input."""
from __future__ import annotations

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


def config_options(settings: BuildSettings, shapes: dict, input_name: str, mode: str) -> dict:
    """Keyword arguments for Polygraphy's CreateConfig, with TensorRT enums still as member names
    (`resolve_options` turns them into enums once TensorRT is imported)."""
    from polygraphy.backend.trt import Profile

    options = {
        "profiles": [Profile().add(input_name, min=tuple(shapes["min"]), opt=tuple(shapes["opt"]),
                                   max=tuple(shapes["max"]))],
        "tf32": settings.tf32,
    }
    if settings.workspace_gib is not None:
        options["memory_pool_limits"] = {"WORKSPACE": int(settings.workspace_gib * 2**30)}
    if settings.opt_level is not None:
        options["builder_optimization_level"] = settings.opt_level
    if settings.hw_compat != "none":
        options["hardware_compatibility_level"] = HW_COMPAT[settings.hw_compat]
    if settings.version_compatible:
        options["version_compatible"] = True
    if mode == "weak":  # only reached on a TensorRT that still has these flags (see typing_mode)
        options["fp16"] = True
        options["int8"] = settings.precision == "int8"
    return options


def resolve_options(options: dict, trt) -> dict:
    """Member names -> the installed TensorRT's enums."""
    out = dict(options)
    if "memory_pool_limits" in out:
        out["memory_pool_limits"] = {getattr(trt.MemoryPoolType, k): v for k, v in out["memory_pool_limits"].items()}
    if "hardware_compatibility_level" in out:
        out["hardware_compatibility_level"] = getattr(trt.HardwareCompatibilityLevel, out["hardware_compatibility_level"])
    return out
