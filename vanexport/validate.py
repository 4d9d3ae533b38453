"""Does an artifact compute what PyTorch computes? Polygraphy's Comparator gives the tolerance verdict,
`metrics` adds what a user needs to trust it (cosine, top-1/top-5 agreement)."""
from __future__ import annotations

import contextlib
import dataclasses
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import metrics
from .errors import ValidationFailed, VanexportError


@dataclass(frozen=True)
class Tolerance:
    precision: str = "fp32"
    atol: float = 1e-4  # on logits; the FP32 verdict
    rtol: float = 0.0  # Polygraphy passes an output if max abs <= atol OR max rel <= rtol; 0 = abs only
    min_top1_agree: float | None = None
    min_cosine: float | None = None  # on the worst image
    max_accuracy_drop: float | None = None  # top-1 accuracy points lost against labels (when the images have them)
    check_atol: bool = True  # FP16/INT8 are judged by agreement, not by max abs (unless --atol is given)


# FP16 and INT8 change logits by design: they are judged on what a user sees (same class, same direction).
TOLERANCES = {
    "fp32": Tolerance("fp32", atol=1e-4, rtol=0.0),
    "fp16": Tolerance("fp16", atol=1e-1, min_top1_agree=0.995, min_cosine=0.9999, check_atol=False),
    "int8": Tolerance("int8", atol=1.0, min_top1_agree=0.97, max_accuracy_drop=1.0, check_atol=False),
}
# TensorRT picks other convolution algorithms than ONNX Runtime and PyTorch: an FP32 engine (TF32 off) is held to
# max abs 1e-3 on logits. FP16/INT8 engines use the tolerances of their precision, as their ONNX files do.
ENGINE_FP32 = Tolerance("fp32", atol=1e-3, rtol=0.0)
PLAN_SUFFIXES = (".plan", ".engine", ".trt")


def engine_tolerance(precision: str) -> Tolerance:
    return ENGINE_FP32 if precision == "fp32" else TOLERANCES[precision]


@dataclass
class InputGroup:
    label: str  # e.g. "random b3 224x224" or "photos 224x224"
    batches: list[np.ndarray]
    labels: np.ndarray | None = None  # class index per image, when the folder says (ImageFolder)
    size: int | None = None  # real images; a static-batch model's padding beyond it is not counted


@dataclass
class ValidationReport:
    model: str
    precision: str
    reference: str
    tolerance: dict
    groups: list[dict]
    overall: dict
    polygraphy_passed: bool
    passed: bool
    failures: list[str] = field(default_factory=list)
    accuracy: dict | None = None  # top-1 against labels: reference, candidate, drop in points
    notes: list[str] = field(default_factory=list)
    runtime: str = "ONNX Runtime CPU"  # what ran the candidate

    def to_dict(self) -> dict:
        return asdict(self)


def default_input_groups(input_shape: list, img_size: int, preprocess, seed: int = 0,
                         random_batches: int = 2) -> list[InputGroup]:
    """Random batches at every declared batch size and resolution, and real photos at the export size."""
    from .data.images import sample_photos

    rng = np.random.default_rng(seed)
    static_batch = input_shape[0] if isinstance(input_shape[0], int) else None
    batch_sizes = [static_batch] if static_batch else [1, 3]
    sizes = [img_size] if isinstance(input_shape[2], int) else sorted({img_size, max(32, img_size - 64), img_size + 32})
    groups = []
    for s in sizes:
        for b in batch_sizes:
            batches = [rng.uniform(-1, 1, (b, 3, s, s)).astype(np.float32) for _ in range(random_batches)]
            groups.append(InputGroup(f"random b{b} {s}x{s}", batches))
    photos = sample_photos(preprocess.at_size(img_size)).array
    groups.append(InputGroup(f"photos {img_size}x{img_size}", _chunks(photos, static_batch or 4, static_batch)))
    return groups


def folder_input_group(folder, preprocess, static_batch: int | None, num_classes: int | None = None) -> InputGroup:
    from .data.images import label_indices, load_folder

    images = load_folder(folder, preprocess)
    labels = label_indices(images.labels, num_classes) if num_classes else None
    return InputGroup(f"{len(images.names)} images from {folder}", _chunks(images.array, static_batch or 8, static_batch),
                      labels, len(images.names))


def _chunks(x: np.ndarray, n: int, static: int | None) -> list[np.ndarray]:
    """Batches of n; for a static-batch model (which takes nothing else) the last one is padded by repeating."""
    out = []
    for i in range(0, len(x), n):
        chunk = x[i:i + n]
        if static and len(chunk) < n:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], n - len(chunk), axis=0)])
        out.append(chunk)
    return out


def compare_onnx(onnx_path, reference_model, groups: list[InputGroup], tolerance: Tolerance,
                 input_name: str = "input", output_name: str = "logits", reference_label: str = "pytorch") -> ValidationReport:
    """Run the ONNX file in ONNX Runtime CPU (through Polygraphy) and PyTorch on the same batches; compare."""
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.comparator import Comparator, IterationResult, SimpleCompareFunc

    from .runtime.torch_backend import TorchBackend

    torch_run = TorchBackend(reference_model)
    feeds = [{input_name: b} for g in groups for b in g.batches]
    runner = OnnxrtRunner(SessionFromOnnx(str(onnx_path), providers=["cpu"]), name="onnxruntime")
    with _quiet_polygraphy():
        results = Comparator.run([runner], data_loader=feeds)
        reference = [IterationResult({output_name: torch_run(f[input_name])}, runner_name=reference_label) for f in feeds]
        results.append((reference_label, reference))
        compare = SimpleCompareFunc(atol=tolerance.atol, rtol=tolerance.rtol, check_error_stat="max")
        accuracy = Comparator.compare_accuracy(results, compare_func=compare)
    return _report(str(onnx_path), results, groups, tolerance, bool(accuracy), output_name, reference_label)


def _report(model: str, results, groups: list[InputGroup], tolerance: Tolerance, polygraphy_passed: bool,
            output_name: str, reference_label: str, runtime: str = "ONNX Runtime CPU") -> ValidationReport:
    """Per-group metrics and the verdict, from Polygraphy RunResults [(candidate, ...), (reference, ...)]."""
    candidate_out = [it[output_name] for it in results[0][1]]
    reference_out = [it[output_name] for it in results[1][1]]
    rows, i = [], 0
    labelled = []
    for g in groups:
        n = len(g.batches)
        cand = np.concatenate(candidate_out[i:i + n])[:g.size]
        ref = np.concatenate(reference_out[i:i + n])[:g.size]
        rows.append({"group": g.label, **metrics.compare_logits(cand, ref)})
        if g.labels is not None:
            labelled.append((cand, ref, g.labels))
        i += n
    overall = metrics.merge(rows)
    accuracy = _accuracy(labelled) if labelled else None
    failures = verdict_failures(overall, tolerance, polygraphy_passed, accuracy)
    notes = []
    if tolerance.max_accuracy_drop is not None and accuracy is None:
        notes.append("accuracy drop not checked: the images have no class labels (use class subfolders)")
    return ValidationReport(model, tolerance.precision, reference_label, asdict(tolerance), rows, overall,
                            polygraphy_passed, not failures, failures, accuracy, notes, runtime)


def compare_backend(backend, reference_model, groups: list[InputGroup], tolerance: Tolerance, model: str,
                    output_name: str = "logits", reference_label: str = "pytorch",
                    runtime: str | None = None) -> ValidationReport:
    """Like compare_onnx, for any Backend (e.g. TensorRT): its outputs and PyTorch's go through the same
    Polygraphy comparison."""
    from polygraphy.comparator import Comparator, IterationResult, RunResults, SimpleCompareFunc

    from .runtime.torch_backend import TorchBackend

    torch_run = TorchBackend(reference_model)
    batches = [b for g in groups for b in g.batches]
    results = RunResults()
    results.append((backend.name, [IterationResult({output_name: backend(b)}, runner_name=backend.name)
                                   for b in batches]))
    results.append((reference_label, [IterationResult({output_name: torch_run(b)}, runner_name=reference_label)
                                      for b in batches]))
    with _quiet_polygraphy():
        compare = SimpleCompareFunc(atol=tolerance.atol, rtol=tolerance.rtol, check_error_stat="max")
        accuracy = Comparator.compare_accuracy(results, compare_func=compare)
    return _report(model, results, groups, tolerance, bool(accuracy), output_name, reference_label,
                   runtime or backend.name)


def groups_within_profile(groups: list[InputGroup], profile: dict) -> list[InputGroup]:
    """The input groups an engine can take: sizes outside its H/W range dropped, batches re-cut to fit its
    batch range (the last one padded by repetition when it would be too small; padding is not counted)."""
    lo, hi = profile["min"], profile["max"]
    out = []
    for g in groups:
        x = np.concatenate(g.batches)[:g.size]
        if not (lo[2] <= x.shape[2] <= hi[2] and lo[3] <= x.shape[3] <= hi[3]):
            continue
        n = min(max(len(g.batches[0]), lo[0]), hi[0])
        batches = []
        for i in range(0, len(x), n):
            chunk = x[i:i + n]
            if len(chunk) < lo[0]:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], lo[0] - len(chunk), axis=0)])
            batches.append(chunk)
        out.append(InputGroup(g.label, batches, g.labels, len(x)))
    return out


def _accuracy(labelled) -> dict:
    cand = np.concatenate([c for c, _, _ in labelled])
    ref = np.concatenate([r for _, r, _ in labelled])
    y = np.concatenate([lb for _, _, lb in labelled])
    ref_acc, cand_acc = float((ref.argmax(1) == y).mean()), float((cand.argmax(1) == y).mean())
    return {"n": int(len(y)), "reference": ref_acc, "candidate": cand_acc, "drop_points": 100 * (ref_acc - cand_acc)}


def verdict_failures(overall: dict, tol: Tolerance, polygraphy_passed: bool, accuracy: dict | None = None) -> list[str]:
    out = []
    if tol.check_atol and not polygraphy_passed:
        out.append(f"max abs error {overall['max_abs_err']:.2e} > atol {tol.atol:.0e}"
                   + (f" and max rel error > rtol {tol.rtol:.0e}" if tol.rtol else ""))
    if tol.min_top1_agree is not None and overall["top1_agree"] < tol.min_top1_agree:
        out.append(f"top-1 agreement {overall['top1_agree']:.2%} < {tol.min_top1_agree:.2%}")
    if tol.min_cosine is not None and overall["min_cosine"] < tol.min_cosine:
        out.append(f"cosine {overall['min_cosine']:.6f} < {tol.min_cosine}")
    if tol.max_accuracy_drop is not None and accuracy is not None and accuracy["drop_points"] > tol.max_accuracy_drop:
        out.append(f"accuracy drop {accuracy['drop_points']:.2f} points > {tol.max_accuracy_drop}")
    return out


@contextlib.contextmanager
def _quiet_polygraphy():
    """Polygraphy logs to stdout; keep stdout clean for --json and reports."""
    from polygraphy.logger import G_LOGGER

    old = G_LOGGER.module_severity
    G_LOGGER.module_severity = G_LOGGER.ERROR
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        G_LOGGER.module_severity = old


def validate(model_path, weights: str | None = None, images: str | None = None, atol: float | None = None,
             rtol: float | None = None, seed: int = 0, raise_on_failure: bool = False) -> ValidationReport:
    """Compare an ONNX file exported by vanexport against its PyTorch FP32 reference (read from its metadata).

    The verdict follows the file's precision (`TOLERANCES`): FP32 by max abs error; FP16 by top-1 agreement
    and cosine; INT8 by top-1 agreement and, when `images` has class subfolders, the accuracy drop.
    An explicit `atol` is enforced at any precision."""
    path = Path(model_path)
    if not path.exists():
        raise VanexportError(f"model file '{path}' not found", "pass an .onnx file made by `vanexport onnx`")
    if path.suffix.lower() in PLAN_SUFFIXES:
        return validate_plan(path, weights=weights, images=images, atol=atol, rtol=rtol, seed=seed,
                             raise_on_failure=raise_on_failure)
    if path.suffix.lower() != ".onnx":
        raise VanexportError(f"cannot validate '{path.name}'", "pass an .onnx file or a TensorRT .plan")
    report = validate_file(path, weights, images, atol, rtol, seed)
    if raise_on_failure and not report.passed:
        raise ValidationFailed(f"{path.name} fails {report.precision} validation: " + "; ".join(report.failures),
                               "see the report; try --no-simplify or another --opset")
    return report


def validate_file(path: Path, weights=None, images=None, atol=None, rtol=None, seed: int = 0) -> ValidationReport:
    """`validate` without the file-name checks (for a file still under its temporary name)."""
    from .export.metadata import read_metadata
    from .reference import reference_model

    meta = read_metadata(path)
    model = reference_model(meta, weights)
    if meta.precision not in TOLERANCES:
        raise VanexportError(f"'{path.name}' says its precision is '{meta.precision}'",
                             f"vanexport validates {', '.join(TOLERANCES)} files")
    base = TOLERANCES[meta.precision]
    tol = _with_overrides(base, atol, rtol)
    groups = _check_groups(meta, images, seed, static_batch=None if meta.dynamic_batch else meta.input_shape[0])
    report = compare_onnx(path, model, groups, tol, meta.input_name, meta.output_name)
    report.notes += _calibration_notes(meta, images)
    return report


def _with_overrides(base: Tolerance, atol, rtol) -> Tolerance:
    """The precision's tolerance with the user's --atol/--rtol; either one makes max abs error count again."""
    return dataclasses.replace(base, atol=atol if atol is not None else base.atol,
                               rtol=rtol if rtol is not None else base.rtol,
                               check_atol=base.check_atol or atol is not None or rtol is not None)


def _check_groups(meta, images, seed: int, static_batch: int | None = None) -> list[InputGroup]:
    """The user's image folder, or random batches at every declared shape plus the sample photos."""
    if images:
        return [folder_input_group(images, meta.preprocess, static_batch, meta.num_classes)]
    return default_input_groups(meta.input_shape, meta.img_size, meta.preprocess, seed=seed)


def _calibration_notes(meta, images) -> list[str]:
    """INT8 checked on its own calibration images flatters it: say so."""
    import json

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
                  device: int = 0) -> ValidationReport:
    """Run a TensorRT plan (after its manifest's checks) and PyTorch on the same inputs; compare with the
    tolerance of the engine's precision. The reference model is rebuilt from the metadata in the manifest."""
    from .export.metadata import ModelMetadata
    from .reference import reference_model
    from .runtime.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(plan_path, device=device, manifest=manifest)
    manifest = backend.manifest
    meta = ModelMetadata(**manifest.model)
    model = reference_model(meta, weights)
    base = engine_tolerance(manifest.precision)
    tol = _with_overrides(base, atol, rtol)
    groups = _check_groups(meta, images, seed)  # an engine's batch range comes from its profile
    groups = groups_within_profile(groups, backend.profile)
    if not groups:
        raise VanexportError(f"no check inputs fit the engine's profile ({backend.profile})",
                             "pass --images at a size the engine takes")
    report = compare_backend(backend, model, groups, tol, str(plan_path), meta.output_name,
                             runtime=f"TensorRT {manifest.tensorrt['version']} on {backend.gpu.name}")
    report.notes += backend.warnings + _calibration_notes(meta, images)
    if raise_on_failure and not report.passed:
        raise ValidationFailed(f"{Path(plan_path).name} fails {tol.precision} validation: " + "; ".join(report.failures),
                               "rebuild with another --opt-level, or keep more layers in FP32 (precision issue)")
    return report
