"""`vanexport validate`: compare an ONNX file or a TensorRT plan written by vanexport with its PyTorch FP32
reference, rebuilt from what the file says about itself."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ValidationFailed, VanexportError
from ..formats.names import kind_of
from .compare import ValidationReport, compare
from .inputs import check_groups, groups_within_profile
from .tolerances import TOLERANCES, engine_tolerance, with_overrides


def validate(model_path, weights: str | None = None, images: str | None = None, atol: float | None = None,
             rtol: float | None = None, seed: int = 0, raise_on_failure: bool = False,
             progress=None) -> ValidationReport:
    """Compare an ONNX file or a TensorRT plan exported by vanexport against its PyTorch FP32 reference (read
    from its metadata or manifest).

    The verdict follows the file's precision (`TOLERANCES`): FP32 by max abs error; FP16 by top-1 agreement
    and cosine; INT8 by top-1 agreement and, when `images` has class subfolders, the accuracy drop.
    An explicit `atol` is enforced at any precision. `progress`: see vanexport.progress."""
    path = Path(model_path)
    if not path.exists():
        raise VanexportError(f"model file '{path}' not found", "pass an .onnx file made by `vanexport onnx`")
    kind = kind_of(path)
    if kind == "plan":
        return validate_plan(path, weights=weights, images=images, atol=atol, rtol=rtol, seed=seed,
                             raise_on_failure=raise_on_failure, progress=progress)
    if kind != "onnx":
        raise VanexportError(f"cannot validate '{path.name}'", "pass an .onnx file or a TensorRT .plan")
    report = validate_onnx(path, weights, images, atol, rtol, seed, progress=progress)
    if raise_on_failure and not report.passed:
        raise ValidationFailed(f"{path.name} fails {report.precision} validation: " + "; ".join(report.failures),
                               "see the report; try --no-simplify or another --opset")
    return report


def validate_onnx(path, weights=None, images=None, atol=None, rtol=None, seed: int = 0, *,
                  reference=None, progress=None) -> ValidationReport:
    """`validate` for an ONNX file, also one still under its temporary name. `reference`: the PyTorch model, when
    the caller has it loaded already (else it is rebuilt from the file's metadata)."""
    from ..formats.onnx_metadata import read_metadata
    from ..model.reference import reference_model
    from ..runtime.onnxruntime_backend import OnnxRuntimeBackend

    path = Path(path)
    meta = read_metadata(path)
    if meta.precision not in TOLERANCES:
        raise VanexportError(f"'{path.name}' says its precision is '{meta.precision}'",
                             f"vanexport validates {', '.join(TOLERANCES)} files")
    model = reference if reference is not None else reference_model(meta, weights)
    tol = with_overrides(TOLERANCES[meta.precision], atol, rtol)
    groups = check_groups(meta, images, seed, static_batch=meta.static_batch, progress=progress)
    reference_must_be_finite(model, groups, meta)
    backend = OnnxRuntimeBackend(path)
    backend.check_matches(meta, path.name)
    report = compare(backend, model, groups, tol, str(path), output_name=meta.output_name, progress=progress,
                     description=_checking(meta.precision, images, "ONNX Runtime CPU"))
    report.notes += _calibration_notes(meta, images)
    return report


def reference_must_be_finite(model, groups, meta) -> None:
    """The first check batch through PyTorch before anything else (kept: the comparison does not run it again)."""
    from ..model.reference import check_finite
    from ..runtime.torch_backend import TorchBackend
    from .compare import ReferenceOutputs

    check_finite(ReferenceOutputs(TorchBackend(model))(groups[0].batches[0]), meta.weights_source,
                 "validate the file against other weights (--weights)")


def _checking(precision: str, images, runtime: str) -> str:
    where = f"'{images}'" if images else "random batches and sample photos"
    return f"checking {precision.upper()} against PyTorch FP32 on {where} ({runtime})"


def _calibration_notes(meta, images) -> list[str]:
    """INT8 checked on its own calibration images flatters it: say so."""
    notes = []
    if meta.precision != "fp32" and meta.weights_layout == "random":
        notes.append("random weights: FP16/INT8 agreement on them says little about a trained model")
    settings = json.loads(meta.extra.get("precision_settings", "{}"))
    calib = settings.get("calibration_source")
    if images and calib and Path(images).resolve() == Path(calib).resolve():
        notes.append("these are the calibration images: held-out images give an honest INT8 verdict")
    return notes


def validate_plan(plan_path, weights: str | None = None, images: str | None = None, atol: float | None = None,
                  rtol: float | None = None, seed: int = 0, raise_on_failure: bool = False, manifest=None,
                  device: int = 0, reference=None, progress=None) -> ValidationReport:
    """Run a TensorRT plan (after its manifest's checks) and PyTorch on the same inputs; compare with the
    tolerance of the engine's precision. The reference model is rebuilt from the metadata in the manifest."""
    from ..formats.onnx_metadata import ModelMetadata
    from ..model.reference import reference_model
    from ..runtime.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(plan_path, device=device, manifest=manifest)
    manifest = backend.manifest
    meta = ModelMetadata(**manifest.model)
    model = reference if reference is not None else reference_model(meta, weights)
    tol = with_overrides(engine_tolerance(manifest.precision), atol, rtol)
    groups = groups_within_profile(check_groups(meta, images, seed, progress=progress),
                                   backend.profile)  # the profile sets the batch
    if not groups:
        raise VanexportError(f"no check inputs fit the engine's profile ({backend.profile})",
                             "pass --images at a size the engine takes")
    reference_must_be_finite(model, groups, meta)
    runtime = f"TensorRT {manifest.tensorrt.version} on {backend.gpu.name}"
    report = compare(backend, model, groups, tol, str(plan_path), output_name=meta.output_name, runtime=runtime,
                     progress=progress, description=_checking(manifest.precision, images, runtime))
    report.notes += backend.warnings + _calibration_notes(meta, images)
    if raise_on_failure and not report.passed:
        raise ValidationFailed(f"{Path(plan_path).name} fails {tol.precision} validation: " + "; ".join(report.failures),
                               "rebuild with another --opt-level, or keep more layers in FP32 (precision issue)")
    return report
