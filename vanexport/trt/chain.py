"""`vanexport trt`: the whole chain, checkpoint -> FP32 ONNX -> FP16/INT8 ONNX -> plan + manifest, each stage
reused when the file on disk was made from the same inputs (checked by hash, not by name)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import VanexportError
from ..files import check_output_path, sha256_file
from .build import AUTO, DEFAULT_FOLDER, EngineResult, build_engine, default_plan_path
from .manifest import EngineManifest, check_plan_hash, compatibility_problem, manifest_path, read_manifest
from .settings import PRECISIONS, BuildSettings

DEFAULT_IMG_SIZE = 224


@dataclass
class TrtResult:
    engine: dict  # EngineResult.to_dict()
    artifacts: list[dict]  # one per stage: stage, path, sha256, reused
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _artifact(stage: str, path, reused: bool, sha256: str | None = None) -> dict:
    return {"stage": stage, "path": str(path), "sha256": sha256 or sha256_file(path), "reused": reused}


def export_trt(model=None, *, variant: str | None = None, weights: str | None = None, precision: str | None = None,
               calib: str | None = None, num_calib: int = 256, settings: BuildSettings | None = None, output=None,
               timing_cache=AUTO, validate: bool = True, images: str | None = None, force: bool = False,
               device: int = 0, progress: Callable[[str], None] | None = None) -> TrtResult:
    """Make a validated TensorRT engine, starting from an ONNX file made by vanexport (`model`; `weights` are then
    the checkpoint it came from, for validation) or from a checkpoint (`variant`/`weights`, random weights without
    them). `precision` defaults to the ONNX file's own.
    Earlier artifacts in engines/ are reused when their inputs' hashes match; `force` rebuilds everything."""
    step = progress or (lambda msg: None)
    t0 = time.perf_counter()
    settings = settings or BuildSettings()
    if model is not None and variant:
        raise VanexportError("pass either MODEL.onnx or --variant, not both",
                             "the ONNX file already says which variant it holds")
    if precision is not None and precision not in PRECISIONS:
        raise VanexportError(f"unknown precision '{precision}'", "use --fp32, --fp16 or --int8")
    if output is not None:
        check_output_path(output)

    from .environment import require_tensorrt, tensorrt_version

    trt, gpu = require_tensorrt(device)  # before any slow work: fail fast on a machine that cannot build

    from ..export.metadata import read_metadata

    artifacts, warnings = [], []
    if model is not None:
        src = Path(model)
        if not src.is_file():
            raise VanexportError(f"model file '{src}' not found", "pass an .onnx file made by `vanexport onnx`")
        artifacts.append(_artifact("onnx", src, reused=True))
    else:
        src, record = _fp32_onnx(variant, weights, settings.img_size or DEFAULT_IMG_SIZE, force, step, warnings)
        artifacts.append(record)
    meta = read_metadata(src)
    settings = settings.with_precision(precision or meta.precision)

    source, record = _precision_onnx(src, meta.precision, settings, calib, num_calib, force, step)
    if record:
        artifacts.append(record)
    source_sha = sha256_file(source)

    plan = Path(output) if output else default_plan_path(source, settings.precision)
    plan.parent.mkdir(parents=True, exist_ok=True)  # engines/ (a given -o folder was checked above)
    reason = None if force else plan_reuse_problem(plan, source_sha, settings, tensorrt_version(trt), gpu, validate)
    if not force and reason is None:
        step(f"reusing {plan} (built from the same ONNX with the same settings on this kind of GPU)")
        manifest = read_manifest(plan)
        validation = manifest.validation
        if validate and images:  # asked to check on these images: check the reused plan on them
            from ..errors import ValidationFailed
            from ..validate import validate_plan

            step(f"validating {plan} on {images}")
            report = validate_plan(plan, weights=weights, images=images, device=device)
            if not report.passed:
                raise ValidationFailed(f"{plan.name} fails on {images}: {'; '.join(report.failures)}",
                                       "--force rebuilds it; see `vanexport validate` for the numbers")
            validation = report.to_dict()
        engine = EngineResult(str(plan), manifest.plan["sha256"], str(manifest_path(plan)), manifest.to_dict(), True,
                              {}, validation)
    else:
        if plan.exists():
            step(f"rebuilding {plan}: {reason or '--force'}")
        engine = build_engine(source, settings, plan, timing_cache=timing_cache, validate=validate,
                              weights=weights, images=images, device=device, progress=step)
    artifacts.append({"stage": "engine", "path": engine.path, "sha256": engine.sha256, "reused": engine.reused})
    return TrtResult(engine.to_dict(), artifacts, round(time.perf_counter() - t0, 3), warnings + engine.warnings)


def _fp32_onnx(variant, weights, img_size: int, force: bool, step, warnings: list[str]) -> tuple[Path, dict]:
    """engines/van_<variant>_<size>.onnx (dynamic batch), exported unless one made from the same weights is there."""
    from ..export.metadata import read_metadata
    from ..export.onnx import default_output_path, export_onnx
    from ..model.factory import load_model

    _, v, info = load_model(variant, weights, quiet=True)  # the weights' hash says whether the file is current
    path = default_output_path(v.name, img_size, None, False)
    if not force and path.is_file():
        try:
            meta = read_metadata(path)
        except VanexportError:
            meta = None
        if meta and meta.variant == v.name and meta.weights_sha256 == info.sha256 and meta.precision == "fp32" \
                and meta.input_shape[1:] == [3, img_size, img_size] and meta.dynamic_batch:
            step(f"reusing {path} (exported from the same weights)")
            if info.is_random:
                warnings.append(f"no --weights given: VAN-{v.name} has random weights ({info.source}); its outputs "
                                "are meaningless, use it only to test the pipeline")
            return path, _artifact("onnx", path, reused=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    result = export_onnx(v.name, weights, img_size=img_size, output=path, progress=step)
    warnings.extend(result.warnings)
    return path, _artifact("onnx", path, reused=False, sha256=result.sha256)


def _precision_onnx(src: Path, src_precision: str, settings: BuildSettings, calib, num_calib: int, force: bool,
                    step) -> tuple[Path, dict | None]:
    """The ONNX file the engine is built from: `src` itself when it already has the engine's precision, else its
    FP16 / INT8 conversion in engines/ (precision issue), reused when made from this very `src`."""
    target = "fp32" if settings.weak_typing and settings.precision == "fp16" else settings.precision
    if src_precision == target:
        return src, None
    if src_precision != "fp32":
        raise VanexportError(f"'{src}' is already {src_precision.upper()}; a {target.upper()} ONNX is made from "
                             "the FP32 one", "pass the FP32 ONNX file (or no MODEL at all)")
    if target == "int8" and not calib:
        raise VanexportError("--int8 needs calibration images", "pass --calib DIR (a folder of real images)")
    from ..export import precision as conversions

    out = DEFAULT_FOLDER / f"{src.stem}_{target}.onnx"
    recipe = {"keep_fp32": list(conversions.DEFAULT_KEEP_FP32), "keep_io_types": True} if target == "fp16" else \
        {"method": "entropy", "num_calib": num_calib, "calibration_sha256": _calibration_sha256(calib)}
    if not force and converted_is_current(out, target, sha256_file(src), recipe):
        step(f"reusing {out} (converted from the same {src.name} with the same recipe)")
        return out, _artifact(target, out, reused=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    if target == "fp16":
        result = conversions.convert_fp16(src, out, progress=step)
    else:
        result = conversions.quantize_int8(src, calib, out, num_calib=num_calib, progress=step)
    return Path(result.path), _artifact(target, result.path, reused=False, sha256=result.sha256)


def _calibration_sha256(calib) -> str:
    from ..data.calibration import open_calibration

    return open_calibration(calib).sha256  # hashes the files, decodes nothing


def converted_is_current(path: Path, precision: str, source_sha256: str, recipe: dict) -> bool:
    """Is `path` a `precision` conversion of the ONNX file whose hash is `source_sha256`, made with `recipe`
    (the entries of its `precision_settings` metadata that matter here)?"""
    import json

    from ..export.metadata import read_metadata

    if not path.is_file():
        return False
    try:
        meta = read_metadata(path)
        settings = json.loads(meta.extra.get("precision_settings", "{}"))
    except (VanexportError, ValueError):
        return False
    return (meta.precision == precision and meta.extra.get("source_sha256") == source_sha256
            and all(settings.get(k) == v for k, v in recipe.items()))


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
    if manifest.source_onnx.get("sha256") != source_sha256:
        return "its source ONNX changed"
    if manifest.settings != settings.to_dict():
        changed = sorted(k for k, v in settings.to_dict().items() if manifest.settings.get(k) != v)
        return "other build settings (" + ", ".join(changed) + ")"
    problem = compatibility_problem(manifest, tensorrt_version, gpu)
    if problem:
        return problem[0]
    if manifest.gpu.get("name") != gpu.name:
        return f"it was tuned on a {manifest.gpu.get('name')}"
    if validated and not (manifest.validation or {}).get("passed"):
        return "it was never validated"
    return None
