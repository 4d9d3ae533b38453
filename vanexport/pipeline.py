"""The one chain: checkpoint -> FP32 ONNX -> FP16/INT8 ONNX -> TensorRT plan + manifest.

Each `ensure_*` returns an `Artifact`, reusing the file already at the output path when it was made from the same
inputs with the same recipe (checked by hash and recorded metadata, never by name), and making it otherwise. The
PyTorch model is loaded once (`ModelSource.load`) and handed to the export and to every check. `vanexport trt`,
`vanexport bundle` and `vanexport bench` all make their files through these functions.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .errors import ValidationFailed, VanexportError
from .progress import as_progress
from .files import check_output_path, sha256_file
from .formats.engine_manifest import EngineManifest, check_plan_hash, compatibility_problem, manifest_path, read_manifest
from .formats.names import DEFAULT_FOLDER, PRECISIONS, converted_path, model_stem, plan_path
from .formats.onnx_metadata import read_metadata
from .trt.build import AUTO, EngineResult, build_engine
from .trt.settings import BuildSettings

DEFAULT_IMG_SIZE = 224


@dataclass(frozen=True)
class Artifact:
    stage: str  # "onnx" | "fp16" | "int8" | "engine"
    path: str
    sha256: str
    made_from: str | None  # sha256 of its input: the weights' tensors (onnx), the FP32 ONNX (fp16/int8), the ONNX (plan)
    reused: bool

    def to_dict(self) -> dict:
        return asdict(self)


class ModelSource:
    """The PyTorch model a chain starts from: a variant and its weights (random from `seed` without them)."""

    def __init__(self, variant: str | None = None, weights: str | None = None, num_classes: int | None = None,
                 seed: int = 0):
        self.variant, self.weights, self.num_classes, self.seed = variant, weights, num_classes, seed
        self._loaded = None

    def load(self):
        """(model, variant, WeightsInfo), loaded on the first call only, and offered to every later check."""
        if self._loaded is None:
            from .model.factory import load_model
            from .model.reference import remember

            self._loaded = load_model(self.variant, self.weights, self.num_classes, seed=self.seed, quiet=True)
            model, v, info = self._loaded
            remember(model, v.name, info.num_classes, info.sha256)
        return self._loaded

    @property
    def model(self):
        return self.load()[0]


def _artifact(stage: str, path, made_from: str | None, reused: bool, sha256: str | None = None) -> Artifact:
    return Artifact(stage, str(path), sha256 or sha256_file(path), made_from, reused)


def ensure_onnx(source: ModelSource, output=None, *, img_size: int = DEFAULT_IMG_SIZE, batch: int | None = None,
                dynamic_hw: bool = False, opset: int = 17, exporter: str = "torchscript", validate: bool = True,
                force: bool = False, progress: Callable[[str], None] | None = None):
    """(Artifact, ExportResult or None when reused): the FP32 ONNX of `source` at `output` (default
    engines/van_<variant>_<size>.onnx), exported unless the file there was exported from the same weights with
    the same shape, opset and exporter."""
    from .export.onnx import export_onnx

    step = as_progress(progress)
    model, v, info = source.load()
    path = Path(output) if output else DEFAULT_FOLDER / f"{model_stem(v.name, img_size, batch, dynamic_hw)}.onnx"
    expected = {"variant": v.name, "num_classes": info.num_classes, "weights_sha256": info.sha256,
                "precision": "fp32", "opset": opset, "exporter": exporter}
    if not force and _onnx_is_current(path, expected, batch, dynamic_hw, img_size):
        step(f"reusing {path} (exported from the same weights)")
        return _artifact("onnx", path, info.sha256, reused=True), None
    path.parent.mkdir(parents=True, exist_ok=True)
    result = export_onnx(v.name, source.weights, num_classes=source.num_classes, img_size=img_size, batch=batch,
                         dynamic_hw=dynamic_hw, opset=opset, exporter=exporter, output=path, validate=validate,
                         seed=source.seed, loaded=source.load(), progress=step)
    return _artifact("onnx", path, info.sha256, reused=False, sha256=result.sha256), result


def _onnx_is_current(path: Path, expected: dict, batch, dynamic_hw: bool, img_size: int) -> bool:
    if not path.is_file():
        return False
    try:
        meta = read_metadata(path)
    except VanexportError:
        return False
    shape = [batch or "batch", 3, "height" if dynamic_hw else img_size, "width" if dynamic_hw else img_size]
    return all(getattr(meta, k) == v for k, v in expected.items()) and meta.input_shape == shape \
        and (dynamic_hw or meta.img_size == img_size) and "form" not in meta.extra  # not the CPU deploy form


def onnx_artifact(path) -> Artifact:
    """An ONNX file the user gave (made by vanexport earlier, of any precision): the start of a chain."""
    path = Path(path)
    if not path.is_file():
        raise VanexportError(f"model file '{path}' not found", "pass an .onnx file made by `vanexport onnx`")
    meta = read_metadata(path)
    made_from = meta.weights_sha256 if meta.precision == "fp32" else meta.extra.get("source_sha256")
    return _artifact("onnx", path, made_from, reused=True)


def precision_recipe(precision: str, *, keep_fp32=(), keep_io_types: bool = True, calib=None,
                     num_calib: int | None = None, method: str = "entropy", exclude=()) -> dict:
    """The entries of a converted file's `precision_settings` metadata that decide whether it can be reused."""
    if precision == "fp16":
        from .precision.fp16 import DEFAULT_KEEP_FP32

        return {"keep_fp32": list(DEFAULT_KEEP_FP32) + list(keep_fp32), "keep_io_types": keep_io_types}
    from .data.calibration import open_calibration

    return {"method": method, "num_calib": num_calib, "exclude": list(exclude),
            "calibration_sha256": open_calibration(calib).sha256}  # hashes the files, decodes nothing


def ensure_precision(onnx: Artifact, precision: str, output=None, *, calib=None, num_calib: int | None = None,
                     method: str = "entropy", keep_fp32=(), exclude=(), images=None, weights=None, reference=None,
                     validate: bool = True, strict: bool = True, force: bool = False,
                     progress: Callable[[str], None] | None = None):
    """(Artifact, PrecisionResult or None when reused): the `precision` conversion of the FP32 ONNX `onnx` at
    `output` (default beside it, van_b0_224_fp16.onnx), converted unless the file there was made from this very
    ONNX with the same recipe. A new file is checked against PyTorch (`reference`, the model already loaded, or
    rebuilt from the file's metadata) on `images` or random batches and sample photos before it is written;
    `strict=False` writes a failing file and records the verdict, `validate=False` skips the check."""
    if precision not in ("fp16", "int8"):
        raise VanexportError(f"unknown precision '{precision}'", "convert to fp16 or int8")
    if precision == "int8" and not calib:
        raise VanexportError("INT8 needs calibration images", "pass --calib DIR (a folder of real images)")
    step = as_progress(progress)
    out = Path(output) if output else converted_path(onnx.path, precision)
    recipe = precision_recipe(precision, keep_fp32=keep_fp32, calib=calib, num_calib=num_calib, method=method,
                              exclude=exclude)
    if not force and converted_is_current(out, precision, onnx.sha256, recipe):
        step(f"reusing {out} (converted from the same {Path(onnx.path).name} with the same recipe)")
        return _artifact(precision, out, onnx.sha256, reused=True), None
    out.parent.mkdir(parents=True, exist_ok=True)
    if precision == "fp16":
        from .precision.fp16 import convert_fp16

        result = convert_fp16(onnx.path, out, keep_fp32=keep_fp32, images=images, weights=weights,
                              reference=reference, validate=validate, strict=strict, progress=step)
    else:
        from .precision.int8 import quantize_int8

        result = quantize_int8(onnx.path, calib, out, num_calib=num_calib, method=method, exclude=exclude,
                               images=images, weights=weights, reference=reference, validate=validate,
                               strict=strict, progress=step)
    return _artifact(precision, out, onnx.sha256, reused=False, sha256=result.sha256), result


def converted_is_current(path: Path, precision: str, source_sha256: str, recipe: dict) -> bool:
    """Is `path` a `precision` conversion of the ONNX file whose hash is `source_sha256`, made with `recipe`
    (the entries of its `precision_settings` metadata that matter here)?"""
    if not Path(path).is_file():
        return False
    try:
        meta = read_metadata(path)
        settings = json.loads(meta.extra.get("precision_settings", "{}"))
    except (VanexportError, ValueError):
        return False
    return (meta.precision == precision and meta.extra.get("source_sha256") == source_sha256
            and all(settings.get(k) == v for k, v in recipe.items()))


def ensure_plan(onnx: Artifact, settings: BuildSettings, output=None, *, timing_cache=AUTO, validate: bool = True,
                images=None, weights=None, reference=None, device: int = 0, force: bool = False,
                progress: Callable[[str], None] | None = None):
    """(Artifact, EngineResult): a TensorRT plan (and manifest) of `onnx` at `output` (default
    engines/<onnx name>_<precision>.plan), built unless the plan there was built from this very ONNX with the
    same settings for this TensorRT and GPU, and validated."""
    from .machine import require_tensorrt, tensorrt_version

    step = as_progress(progress)
    trt, gpu = require_tensorrt(device)
    out = Path(output) if output else plan_path(onnx.path, settings.precision)
    out.parent.mkdir(parents=True, exist_ok=True)
    reason = "--force" if force else plan_reuse_problem(out, onnx.sha256, settings, tensorrt_version(trt), gpu,
                                                        validate)
    if reason is None:
        step(f"reusing {out} (built from the same ONNX with the same settings on this kind of GPU)")
        manifest = read_manifest(out)
        validation = manifest.validation
        if validate and images:  # asked to check on these images: check the reused plan on them
            from .check.validate import validate_plan

            step(f"validating {out} on {images}")
            report = validate_plan(out, weights=weights, images=images, device=device, reference=reference,
                                   progress=step)
            if not report.passed:
                raise ValidationFailed(f"{out.name} fails on {images}: {'; '.join(report.failures)}",
                                       "--force rebuilds it; see `vanexport validate` for the numbers")
            validation = report.to_dict()
        engine = EngineResult(str(out), manifest.plan.sha256, str(manifest_path(out)), manifest.to_dict(), True, {},
                              validation)
    else:
        if out.exists():
            step(f"rebuilding {out}: {reason}")
        engine = build_engine(onnx.path, settings, out, timing_cache=timing_cache, validate=validate,
                              weights=weights, images=images, device=device, reference=reference, progress=step)
    return Artifact("engine", engine.path, engine.sha256, onnx.sha256, engine.reused), engine


def plan_reuse_problem(plan: Path, source_sha256: str, settings: BuildSettings, tensorrt_version: str, gpu,
                       validated: bool = True) -> str | None:
    """Why the plan on disk cannot be reused for this build (None when it can): built from another ONNX, with
    other settings, for another TensorRT or GPU, modified since, or never validated."""
    if not plan.is_file():
        return "no plan yet"
    try:
        manifest: EngineManifest = read_manifest(plan)
        check_plan_hash(plan, manifest)
    except VanexportError as e:
        return e.problem
    if manifest.source_onnx.sha256 != source_sha256:
        return "its source ONNX changed"
    if manifest.settings != settings.to_dict():
        changed = sorted(k for k, v in settings.to_dict().items() if manifest.settings.get(k) != v)
        return "other build settings (" + ", ".join(changed) + ")"
    problem = compatibility_problem(manifest, tensorrt_version, gpu)
    if problem:
        return problem[0]
    if manifest.gpu.name != gpu.name:
        return f"it was tuned on a {manifest.gpu.name}"
    if validated and not manifest.validated:
        return "it was never validated"
    return None


@dataclass
class TrtResult:
    engine: dict  # EngineResult.to_dict()
    artifacts: list[dict]  # one per stage: Artifact.to_dict()
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def export_trt(model=None, *, variant: str | None = None, weights: str | None = None, precision: str | None = None,
               calib: str | None = None, num_calib: int | None = None, settings: BuildSettings | None = None, output=None,
               timing_cache=AUTO, validate: bool = True, images: str | None = None, force: bool = False,
               device: int = 0, progress: Callable[[str], None] | None = None) -> TrtResult:
    """`vanexport trt`: a validated TensorRT engine, starting from an ONNX file made by vanexport (`model`;
    `weights` are then the checkpoint it came from, for validation) or from a checkpoint (`variant`/`weights`,
    random weights without them). `precision` defaults to the ONNX file's own.
    Earlier artifacts in engines/ are reused when their inputs' hashes match; `force` rebuilds everything."""
    from .machine import require_tensorrt
    from .model.factory import random_weights_warning

    step = as_progress(progress)
    t0 = time.perf_counter()
    settings = settings or BuildSettings()
    if model is not None and variant:
        raise VanexportError("pass either MODEL.onnx or --variant, not both",
                             "the ONNX file already says which variant it holds")
    if precision is not None and precision not in PRECISIONS:
        raise VanexportError(f"unknown precision '{precision}'", "use --fp32, --fp16 or --int8")
    if output is not None:
        check_output_path(output)
    require_tensorrt(device)  # before any slow work: fail fast on a machine that cannot build

    warnings: list[str] = []
    reference = None
    if model is not None:
        src = onnx_artifact(model)
    else:
        source = ModelSource(variant, weights)
        src, exported = ensure_onnx(source, img_size=settings.img_size or DEFAULT_IMG_SIZE, force=force,
                                    progress=step)
        reference, v, info = source.load()
        if exported is not None:
            warnings += exported.warnings
        elif info.is_random:
            warnings.append(random_weights_warning(v.name, source.seed))
    src_precision = read_metadata(src.path).precision
    settings = settings.with_precision(precision or src_precision)

    chain = [src]
    target = "fp32" if settings.weak_typing and settings.precision == "fp16" else settings.precision
    if src_precision != target:
        if src_precision != "fp32":
            raise VanexportError(f"'{src.path}' is already {src_precision.upper()}; a {target.upper()} ONNX is made "
                                 "from the FP32 one", "pass the FP32 ONNX file (or no MODEL at all)")
        if target == "int8" and not calib:
            raise VanexportError("--int8 needs calibration images", "pass --calib DIR (a folder of real images)")
        converted, _ = ensure_precision(src, target, DEFAULT_FOLDER / f"{Path(src.path).stem}_{target}.onnx",
                                        calib=calib, num_calib=num_calib, images=images, weights=weights,
                                        reference=reference, validate=validate, force=force, progress=step)
        chain.append(converted)
    plan, engine = ensure_plan(chain[-1], settings, output, timing_cache=timing_cache, validate=validate,
                               images=images, weights=weights, reference=reference, device=device, force=force,
                               progress=step)
    chain.append(plan)
    return TrtResult(engine.to_dict(), [a.to_dict() for a in chain], round(time.perf_counter() - t0, 3),
                     warnings + engine.warnings)
