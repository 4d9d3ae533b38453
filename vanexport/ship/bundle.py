"""`vanexport bundle`: everything a device needs in one checked archive (the device opens it with
vanexport.device.bundle).

A bundle (tar.gz) holds:
    manifest.json            schema version, model, preprocessing, labels, I/O, provenance, fidelity, sha256 of every file
    README.txt               what to run on the device
    labels.txt               one class name per line, in class-index order
    onnx/<stem>_<prec>.onnx  one ONNX file per precision (fp32 always: the CPU fallback and the source of the others)
    onnx/<data file>         the external data an ONNX file reads its weights from, if it has any (beside it)
    engines/<name>.plan      TensorRT plans, each with <name>.manifest.json (built elsewhere, or on the device)
    timing.cache             TensorRT timing cache, if one was given or a device build made one
    check/images.npz         8-bit check crops and each ONNX file's logits on them (ONNX Runtime CPU)
Making a bundle needs the export stack (torch, onnx); opening one needs only numpy (and Pillow to classify).
"""
from __future__ import annotations

import datetime
import hashlib
import io
import os
import platform
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from ..errors import VanexportError
from ..files import atomic_output, check_output_path, sha256_file, work_folder
from ..formats.bundle_manifest import (SCHEMA_VERSION, BundleManifest, CheckEntry, EngineEntry, FileEntry,
                                       LabelsEntry, ModelInfo, OnnxEntry, TensorIO)
from ..formats.engine_manifest import manifest_path, read_manifest
from ..formats.names import DEFAULT_FOLDER, PRECISIONS
from .archive import write_archive

CHECK_FILE = "check/images.npz"
LABELS_FILE = "labels.txt"
README_FILE = "README.txt"
TIMING_CACHE_FILE = "timing.cache"


@dataclass
class BundleResult:
    path: str
    sha256: str
    size_bytes: int
    schema_version: int
    variant: str
    num_classes: int
    models: list[dict]
    engines: list[dict]
    labels: dict
    timing_cache: bool
    files: dict
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def make_bundle(variant: str | None = None, weights: str | None = None, *, model: str | os.PathLike | None = None,
                precisions=("fp32",), calib: str | None = None, num_calib: int | None = None, engines=(),
                timing_cache: str | None = None,
                labels: str | None = None, check_images: str | None = None, images: str | None = None,
                img_size: int = 224,
                output: str | os.PathLike | None = None, seed: int = 0, validate: bool = True,
                progress: Callable[[str], None] | None = None) -> BundleResult:
    """Export (or take `model`, an FP32 ONNX file made by vanexport), convert to each precision, validate, and
    pack everything a device needs into one tar.gz. Nothing is written unless every step succeeds.

    Each precision is compared with the FP32 PyTorch reference: on `images` (a held-out folder, with labels
    when it has class subfolders) if given, else on random batches and sample photos. A file that fails is still
    bundled, marked as failed (devices never pick it), so the user sees the numbers. `validate=False` skips the
    comparisons (the manifest then records no fidelity). Paths of this machine (weights, calibration and image
    folders) are recorded by their names only. `progress`: see vanexport.progress.
    """
    from ..check.validate import validate_onnx
    from ..formats.onnx_metadata import read_metadata
    from ..pipeline import ModelSource, ensure_onnx, ensure_precision, onnx_artifact
    from ..progress import as_progress

    step = as_progress(progress)
    precisions = _parse_precisions(precisions)
    if "int8" in precisions and not calib:
        raise VanexportError("INT8 needs calibration images", "pass --calib DIR (a folder of real images)")
    plans = [_check_engine_files(p) for p in engines]
    if timing_cache and not Path(timing_cache).is_file():
        raise VanexportError(f"timing cache '{timing_cache}' not found", "pass the file `vanexport trt --timing-cache` wrote")
    if timing_cache and not Path(timing_cache).stat().st_size:
        raise VanexportError(f"timing cache '{timing_cache}' is empty", "leave --timing-cache out, or build once more")
    if output:
        check_output_path(output)
    label_names = None
    if labels:
        from ..data.labels import read_labels

        label_names = read_labels(labels)
    warns: list[str] = []

    def check(path, reference) -> dict | None:
        if not validate:
            return None
        return validate_onnx(path, weights, images, seed=seed, reference=reference, progress=step).to_dict()

    with work_folder() as work:
        reference, exported = None, None
        if model is not None:
            fp32 = onnx_artifact(model)
            precision = read_metadata(model).precision
            if precision != "fp32":
                raise VanexportError(f"'{model}' is {precision.upper()}, not FP32",
                                     "pass the FP32 ONNX file; the bundle converts it to the other precisions")
        else:
            source = ModelSource(variant, weights, seed=seed)
            fp32, exported = ensure_onnx(source, work / "fp32.onnx", img_size=img_size,
                                         validate=validate and not images, progress=step)
            warns += exported.warnings
            reference = source.model
        meta = read_metadata(fp32.path)
        if label_names is not None and len(label_names) != meta.num_classes:  # before the slow work
            raise VanexportError(f"the labels file has {len(label_names)} lines but the model has "
                                 f"{meta.num_classes} classes", "give one name per class, in class-index order")
        if exported is not None and exported.validation and not images:
            fp32_validation = exported.validation
        else:
            fp32_validation = check(fp32.path, reference)
        weights_info = {"source": meta.weights_source, "layout": meta.weights_layout, "sha256": meta.weights_sha256,
                        "random": meta.weights_layout == "random"}
        stem = meta.stem
        out = Path(output) if output else DEFAULT_FOLDER / f"{stem}_bundle.tar.gz"
        if not output:
            out.parent.mkdir(parents=True, exist_ok=True)
        check_output_path(out)

        fp32_name = f"onnx/{stem}_fp32.onnx"
        files: dict[str, Path | bytes] = {fp32_name: Path(fp32.path)}
        models = [_model_entry(fp32_name, fp32.sha256, "fp32", fp32_validation,
                               {"tool": f"vanexport {meta.vanexport_version} onnx", "exporter": meta.exporter,
                                "opset": meta.opset, "weights": weights_info})]
        # An engine built from an FP16/INT8 file converted from this FP32 one ships with that very file.
        reused = _engine_sources(plans, fp32.sha256)
        for prec in [p for p in PRECISIONS[1:] if p in precisions or p in reused]:
            made_by = {"source": fp32_name, "source_sha256": fp32.sha256}
            if prec in reused:
                path, validation = reused[prec], None
                made_by["tool"] = f"vanexport {read_metadata(path).vanexport_version} (the source of a bundled engine)"
                step(f"taking {path.name}, the {prec.upper()} source of a bundled engine")
            else:  # checked like every converted file, but a failing one is kept and marked (strict=False)
                art, result = ensure_precision(fp32, prec, work / f"{stem}_{prec}.onnx", calib=calib,
                                               num_calib=num_calib, images=images, weights=weights,
                                               reference=reference, validate=validate, strict=False, progress=step)
                path, record = Path(art.path), result.to_dict()
                validation = record.get("validation")
                made_by["tool"] = f"vanexport {__version__} {'fp16' if prec == 'fp16' else 'quantize'}"
                made_by.update({k: v for k, v in record.items() if k in ("kept_fp32", "converted_nodes", "seconds")})
                if record.get("calibration"):
                    made_by["calibration"] = {k: v for k, v in record["calibration"].items() if k != "cache"}
                warns += result.warnings
            if validation is None:
                validation = check(path, reference)
            name = f"onnx/{stem}_{prec}.onnx"
            files[name] = path
            models.append(_model_entry(name, sha256_file(path), prec, validation, made_by))
        for m in models:
            for name, data_file in _external_data(m.file, files[m.file]).items():
                if files.setdefault(name, data_file) != data_file:
                    raise VanexportError(f"two ONNX files read their weights from files named '{name}'",
                                         "give their external data files different names")
            if m.validated is False:
                warns.append(f"{m.precision.upper()} failed its validation; devices will not pick it automatically")

        step("running every ONNX file on the check images (ONNX Runtime CPU)")
        files[CHECK_FILE] = _check_images(meta, {m.precision: files[m.file] for m in models}, check_images)

        names, labels_source = _labels(label_names, labels, weights_info, meta.num_classes)
        _check_class_names(names)
        files[LABELS_FILE] = ("\n".join(names) + "\n").encode()

        onnx_by_sha = {m.sha256: m.file for m in models}
        engine_entries = []
        for plan, manifest_file in plans:
            entry = _engine_entry(plan, manifest_file, onnx_by_sha)
            files[entry.file], files[entry.manifest] = plan, manifest_file
            engine_entries.append(entry)
        if timing_cache:
            files[TIMING_CACHE_FILE] = Path(timing_cache)

        local = [p for p in (weights, meta.weights_source, model, calib, images, check_images, labels, timing_cache,
                             *engines) if p]
        manifest = BundleManifest(
            model=ModelInfo(meta.variant, meta.num_classes, without_local_paths(weights_info, local)),
            preprocessing=meta.preprocessing,
            io_input=TensorIO(meta.input_name, "float32", meta.input_shape, layout="NCHW"),
            io_output=TensorIO(meta.output_name, "float32", [meta.input_shape[0], meta.num_classes], meaning="logits"),
            labels=LabelsEntry(LABELS_FILE, len(names), labels_source),
            models=[replace(m, made_by=without_local_paths(m.made_by, local),
                            validation=without_local_paths(m.validation, local)) for m in models],
            engines=engine_entries,
            check=CheckEntry(CHECK_FILE, _check_names(files[CHECK_FILE]),
                             "ONNX Runtime CPU outputs of each ONNX file on these images"),
            timing_cache=TIMING_CACHE_FILE if timing_cache else None,
            created_at=_now(), created_by=_provenance(),
            history=[{"at": _now(), "event": "bundle created", "by": f"vanexport {__version__}"}])
        step(f"writing {out}")
        return _write(out, manifest, files, warns)


def add_engine_to_bundle(bundle: str | os.PathLike, plan: str | os.PathLike, manifest: str | os.PathLike | None = None,
                         *, timing_cache: str | os.PathLike | None = None, validation: dict | None = None,
                         progress: Callable[[str], None] | None = None) -> BundleResult:
    """Add a TensorRT plan (and its manifest, default: beside it) to an existing bundle, atomically.

    The bundle is checked first; the plan must have been built from one of its ONNX files (by sha256). An engine
    of the same file name is replaced; `timing_cache` replaces the bundle's cache; `validation` (the check of the
    plan against the bundled ONNX) is recorded with the engine. The new archive is written beside the old one and
    renamed over it, so an interrupted call leaves the old bundle intact.
    """
    from ..device.bundle import open_bundle

    step = progress or (lambda msg: None)
    bundle = Path(bundle)
    plan_path, manifest_file = _check_engine_files(plan, manifest)
    if timing_cache is not None and not Path(timing_cache).is_file():
        raise VanexportError(f"timing cache '{timing_cache}' not found", "pass the cache file the build wrote")
    if timing_cache is not None and not Path(timing_cache).stat().st_size:
        raise VanexportError(f"timing cache '{timing_cache}' is empty", "add the engine without it")
    with work_folder() as work:
        root = work / "b"
        step(f"checking {bundle}")
        old = open_bundle(bundle, root).manifest
        entry = _engine_entry(plan_path, manifest_file, {m.sha256: m.file for m in old.models})
        if validation is not None:
            entry.validation = validation
        files: dict[str, Path | bytes] = {name: root / name for name in old.files}
        for e in old.engines:
            if e.file == entry.file:
                files.pop(e.file, None)
                files.pop(e.manifest, None)
        files[entry.file], files[entry.manifest] = plan_path, manifest_file
        new = replace(old, engines=[e for e in old.engines if e.file != entry.file] + [entry])
        if timing_cache is not None:
            files[TIMING_CACHE_FILE] = Path(timing_cache)
            new.timing_cache = TIMING_CACHE_FILE
        new.history = list(old.history) + [{
            "at": _now(), "event": f"engine {Path(entry.file).name} added", "by": f"vanexport {__version__}",
            "tensorrt": entry.tensorrt_version, "gpu": entry.gpu_name}]
        new.created_by = dict(old.created_by, last_modified_by=_provenance())
        step(f"rewriting {bundle}")
        return _write(bundle, new, files, [])


def _write(out: Path, manifest: BundleManifest, files: dict, warns: list[str]) -> BundleResult:
    """README.txt from the manifest, every file's sha256 and size into it, then the archive, atomically."""
    files = {k: v for k, v in files.items() if k != README_FILE}
    files[README_FILE] = _readme(manifest).encode()
    manifest.files = {name: FileEntry(_sha(src), len(src) if isinstance(src, bytes) else Path(src).stat().st_size)
                      for name, src in sorted(files.items())}
    record = manifest.to_dict()
    BundleManifest.from_dict(record)  # what a device will check, checked here first
    _check_parts(manifest, files)
    with atomic_output(out) as tmp:
        write_archive(tmp, record, files)
        digest, size = sha256_file(tmp), tmp.stat().st_size
    return BundleResult(str(out), digest, size, SCHEMA_VERSION, manifest.model.variant, manifest.model.num_classes,
                        [{"precision": m.precision, "file": m.file, "sha256": m.sha256,
                          "fidelity": fidelity(m.validation)} for m in manifest.models],
                        record["engines"], record["labels"], manifest.timing_cache is not None, record["files"], warns)


def _check_class_names(names: list[str]) -> None:
    """Every name as a device reads it back from labels.txt: one line each, no spaces around it."""
    from ..formats.fields import class_name

    for i, name in enumerate(names):
        try:
            class_name(name, f"class name {i}")
        except ValueError as e:
            raise VanexportError(str(e), "give every class a name of one line (--labels FILE)") from None


def _external_data(member: str, onnx_file) -> dict[str, Path]:
    """The files an ONNX file reads its weights from (beside it, where ONNX Runtime looks), as bundle members
    beside its own member; a data file elsewhere (another folder, an absolute path) or missing is refused."""
    from ..formats.fields import path_part
    from ..formats.onnx_wire import facts_from_file

    out = {}
    for location in sorted(set(facts_from_file(onnx_file).external_data)):
        try:
            path_part(location, "its external data file")
        except ValueError as e:
            raise VanexportError(f"'{Path(onnx_file).name}' reads weights from outside its folder: {e}",
                                 "save the model with its external data beside it (or as a single file)") from None
        source = Path(onnx_file).parent / location
        if not source.is_file():
            raise VanexportError(f"'{Path(onnx_file).name}' reads weights from '{location}', which is not beside it",
                                 "put the external data file beside the ONNX file")
        out[f"{member.rpartition('/')[0]}/{location}"] = source
    return out


def _check_parts(manifest: BundleManifest, files: dict) -> None:
    """What a device checks when it opens the bundle (device.consistency), checked before it is written."""
    from ..device.consistency import check_parts
    from ..formats.onnx_wire import facts_from_file

    labels = files[manifest.labels.file]
    labels = labels if isinstance(labels, bytes) else Path(labels).read_bytes()
    try:
        check_parts(manifest, labels, {m.file: facts_from_file(files[m.file]) for m in manifest.models})
    except ValueError as e:
        raise VanexportError(f"the bundle's parts would not agree: {e}", "export the model again with `vanexport onnx` and bundle that") from None


def without_local_paths(value, paths):
    """`value` (a manifest part) with every mention of the given local paths (as given, or absolute) replaced by
    their names: a bundle travels, and the folders of the machine that made it mean nothing elsewhere."""
    if isinstance(value, dict):
        return {k: without_local_paths(v, paths) for k, v in value.items()}
    if isinstance(value, list):
        return [without_local_paths(v, paths) for v in value]
    if not isinstance(value, str):
        return value
    spellings = {}
    for p in paths:
        spec = str(p).split("#sha256=")[0]  # a pinned checkpoint: PATH#sha256=HEX
        if "://" in spec or spec in ("official", ""):
            continue
        name = Path(spec).name or spec
        for s in {spec, spec.rstrip("/"), str(Path(spec).resolve())}:
            if s and s != name:
                spellings[s] = name
    for s in sorted(spellings, key=len, reverse=True):  # the longest first: /a/b/calib before calib
        value = value.replace(s, spellings[s])
    return value


def _sha(src) -> str:
    return hashlib.sha256(src).hexdigest() if isinstance(src, bytes) else sha256_file(src)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _provenance() -> dict:
    from ..machine import package_versions

    versions = package_versions()
    return {"vanexport": __version__, "python": platform.python_version(), "platform": platform.platform(),
            **{k: versions[k] for k in ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxsim", "tensorrt",
                                        "nvidia-modelopt") if versions.get(k)}}


def _parse_precisions(precisions) -> list[str]:
    if isinstance(precisions, str):
        precisions = precisions.split(",")
    wanted = [p.strip().lower() for p in precisions if p.strip()]
    bad = [p for p in wanted if p not in PRECISIONS]
    if bad:
        raise VanexportError(f"unknown precision {', '.join(bad)}", f"choose from {', '.join(PRECISIONS)}")
    return ["fp32"] + [p for p in PRECISIONS[1:] if p in wanted]  # FP32 always: the CPU fallback and the source


def _model_entry(name: str, sha256: str, precision: str, validation: dict | None, made_by: dict) -> OnnxEntry:
    return OnnxEntry(name, precision, sha256, made_by,
                     {k: v for k, v in validation.items() if k != "model"} if validation else None)


def fidelity(validation: dict | None) -> dict | None:
    """The few numbers a person reads: verdict and the overall comparison with the FP32 PyTorch reference."""
    if not validation:
        return None
    overall, acc = validation.get("overall", {}), validation.get("accuracy") or {}
    out = {"passed": validation.get("passed"), "reference": validation.get("reference"),
           **{k: overall[k] for k in ("n", "max_abs_err", "min_cosine", "top1_agree", "top5_agree") if k in overall}}
    if "candidate" in acc:  # held-out images with labels: accuracy against them, and the FP32 PyTorch model's
        out.update(accuracy=acc["candidate"], reference_accuracy=acc.get("reference"))
    return out


def fidelity_summary(f: dict | None, passed: str = "PASS", failed: str = "FAIL") -> str:
    """One line for a person: verdict, errors against the FP32 PyTorch model, and accuracy when labelled."""
    if not f:
        return "not validated"
    return ((passed if f["passed"] else failed)
            + f" vs FP32 PyTorch on {f.get('n', '?')} inputs: max abs {f.get('max_abs_err', float('nan')):.2e}, "
            f"top-1 agreement {f.get('top1_agree', float('nan')):.1%}"
            + (f", accuracy {f['accuracy']:.2%} (PyTorch {f['reference_accuracy']:.2%})" if "accuracy" in f else ""))


def _check_images(meta, onnx_files: dict[str, Path], folder) -> bytes:
    from ..data.images import check_crops
    from ..data.preprocess import normalize
    from ..runtime.batching import run_batched
    from ..runtime.onnxruntime_backend import OnnxRuntimeBackend

    pre = meta.preprocess
    pixels, names = check_crops(pre, folder)
    x = normalize(pixels, pre)
    arrays = {"pixels": pixels, "names": np.array(names)}
    size = meta.static_batch or 8
    for prec, path in onnx_files.items():
        arrays[f"logits_{prec}"] = run_batched(OnnxRuntimeBackend(path), x, size, meta.static_batch or 1)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _check_names(npz_bytes: bytes) -> list[str]:
    with np.load(io.BytesIO(npz_bytes), allow_pickle=False) as z:
        return [str(n) for n in z["names"]]


def _labels(names, labels_file, weights_info: dict, num_classes: int) -> tuple[list[str], str]:
    from ..data.labels import default_labels

    if names:
        return names, f"file {Path(labels_file).name}"
    source = weights_info.get("source") or ""
    if Path(source).is_file():
        from ..model.checkpoints import read_class_names

        names = read_class_names(source)
        if names is not None:
            if len(names) != num_classes:
                raise VanexportError(f"the checkpoint names {len(names)} classes but its head has {num_classes}",
                                     "pass --labels FILE with one name per class")
            return names, "the checkpoint's own class names"
    return default_labels(num_classes)


def _engine_sources(plans: list[tuple[Path, Path]], fp32_sha: str) -> dict[str, Path]:
    """FP16/INT8 ONNX files that bundled engines were built from, when they still exist unchanged and were
    converted from the bundle's FP32 file (by the sha256 recorded in their metadata)."""
    from ..formats.onnx_metadata import read_metadata

    out = {}
    for plan, _ in plans:
        try:
            source = read_manifest(plan).source_onnx
        except VanexportError:
            continue  # reported by _engine_entry
        path = Path(source.path or "")
        if source.precision in ("fp16", "int8") and path.is_file() and sha256_file(path) == source.sha256:
            meta = read_metadata(path)
            if meta.extra.get("source_sha256") == fp32_sha and meta.precision == source.precision:
                out[meta.precision] = path
    return out


def _check_engine_files(plan, manifest=None) -> tuple[Path, Path]:
    plan = Path(plan)
    if not plan.is_file():
        raise VanexportError(f"engine '{plan}' not found", "pass a .plan written by `vanexport trt`")
    manifest = Path(manifest) if manifest else manifest_path(plan)
    if not manifest.is_file():
        raise VanexportError(f"engine '{plan.name}' has no manifest ({manifest.name} is missing)",
                             "rebuild it with `vanexport trt`, which writes the manifest beside the plan")
    return plan, manifest


def _engine_entry(plan: Path, manifest_file: Path, onnx_by_sha: dict[str, str]) -> EngineEntry:
    """The bundle manifest's entry for a plan, after checking its hash and that it came from a bundled ONNX."""
    from ..formats.engine_manifest import parse_manifest

    try:
        text = manifest_file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise VanexportError(f"engine manifest '{manifest_file}' is not readable ({e})", "rebuild the engine") from e
    m = parse_manifest(text, str(manifest_file))
    digest = sha256_file(plan)
    if m.plan.sha256 != digest:
        raise VanexportError(f"'{plan.name}' does not match the sha256 in its manifest",
                             "the plan was changed after it was built; rebuild it")
    if m.source_onnx.sha256 not in onnx_by_sha:
        raise VanexportError(f"'{plan.name}' was not built from any ONNX file in this bundle",
                             "build it from the bundle's ONNX (vanexport trt --bundle), or bundle its source ONNX")
    return EngineEntry(file=f"engines/{plan.name}", manifest=f"engines/{manifest_path(plan).name}", sha256=digest,
                       source=onnx_by_sha[m.source_onnx.sha256], precision=m.precision,
                       tensorrt_version=m.tensorrt.version, version_compatible=m.tensorrt.version_compatible,
                       hardware_compatibility=m.tensorrt.hardware_compatibility, gpu_name=m.gpu.name,
                       compute_capability=m.gpu.compute_capability, validation=m.validation)


def _weights_name(source) -> str:
    """A checkpoint by its file name (never a folder of the machine that made the bundle); URLs, 'official' and
    'random(seed=N)' as they are."""
    source = str(source or "?")
    return source if "://" in source or "/" not in source and "\\" not in source else Path(source).name


def _readme(m: BundleManifest) -> str:
    model, pre = m.model, m.preprocessing
    rows = []
    for e in m.models:
        rows.append(f"  {e.file:<40} {e.precision.upper():<5} {fidelity_summary(fidelity(e.validation))}")
    for e in m.engines:
        rows.append(f"  {e.file:<40} {e.precision.upper():<5} TensorRT {e.tensorrt_version}, "
                    f"sm_{e.compute_capability} ({e.gpu_name})")
    random = "\n         RANDOM WEIGHTS: for testing the pipeline only, predictions are meaningless" \
        if model.weights.get("random") else ""
    return f"""VAN-{model.variant} classifier bundle ({model.num_classes} classes), made by vanexport {m.created_by.get('vanexport')}
{'=' * 78}
Weights: {_weights_name(model.weights.get('source'))} (sha256 {str(model.weights.get('sha256'))[:16]}){random}
Input:   '{m.io_input.name}' float32 NCHW {m.io_input.shape}, RGB.
         Resize the short side to {pre['resize_size']} ({pre['interpolation']}), centre-crop {pre['input_size']},
         scale to [0, 1], normalise with mean {pre['mean']} and std {pre['std']}.
Output:  '{m.io_output.name}' float32 logits. Class names: {m.labels.file}, from {m.labels.source}.

Files (sha256 of each in manifest.json; `vanexport unpack` checks them all):
{chr(10).join(rows)}
  {m.check.file:<40} check images and each ONNX file's expected logits

On the device (no PyTorch needed):
  pip install "vanexport[cpu]"      # ONNX Runtime; or "vanexport[gpu]"; on a Jetson with JetPack's TensorRT: vanexport
  vanexport predict photo.jpg --model THIS_BUNDLE.tar.gz        # picks TensorRT > ONNX Runtime CUDA > CPU, says which
  (OpenVINO on a CPU: pip install "vanexport[openvino]", then --backend openvino; BF16 CPUs: --precision bf16)
  vanexport trt --bundle THIS_BUNDLE.tar.gz --precision fp16    # build an engine for this GPU into the bundle
  vanexport unpack THIS_BUNDLE.tar.gz -o van/                   # checked unpacking, e.g. for trtexec
Serving:
  vanexport triton THIS_BUNDLE.tar.gz -o model_repository/
  vanexport deepstream THIS_BUNDLE.tar.gz -o config_infer.txt
Engines are tied to the TensorRT version and GPU that built them; the ONNX files run anywhere.
"""
