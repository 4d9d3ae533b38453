"""`vanexport bundle`: everything a device needs in one checked archive, and the `Bundle` a device opens.

A bundle (tar.gz) holds:
    manifest.json            schema version, model, preprocessing, labels, I/O, provenance, fidelity, sha256 of every file
    README.txt               what to run on the device
    labels.txt               one class name per line, in class-index order
    onnx/<stem>_<prec>.onnx  one ONNX file per precision (fp32 always: the CPU fallback and the source of the others)
    engines/<name>.plan      TensorRT plans, each with <name>.manifest.json (built elsewhere, or on the device)
    timing.cache             TensorRT timing cache, if one was given or a device build made one
    check/images.npz         8-bit check crops and each ONNX file's logits on them (ONNX Runtime CPU)
Making a bundle needs the export stack (torch, onnx); opening one needs only numpy (and Pillow to classify).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from ..errors import VanexportError
from ..files import atomic_output, check_output_path, sha256_file
from .archive import FORMAT, MANIFEST, SCHEMA_VERSION, read_bundle, verify_tree, write_archive

PRECISIONS = ("fp32", "fp16", "int8")
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
                precisions=("fp32",), calib: str | None = None, num_calib: int = 256, engines=(),
                timing_cache: str | None = None,
                labels: str | None = None, check_images: str | None = None, images: str | None = None,
                img_size: int = 224,
                output: str | os.PathLike | None = None, seed: int = 0, validate: bool = True,
                progress: Callable[[str], None] | None = None) -> BundleResult:
    """Export (or take `model`, an FP32 ONNX file made by vanexport), convert to each precision, validate, and
    pack everything a device needs into one tar.gz. Nothing is written unless every step succeeds.

    Each precision is compared with the FP32 PyTorch reference: on `images` (a held-out folder, with labels
    when it has class subfolders) if given, else on random batches and sample photos. `validate=False` skips the
    comparisons (the manifest then records no fidelity).
    """
    step = progress or (lambda msg: None)
    precisions = _parse_precisions(precisions)
    if "int8" in precisions and not calib:
        raise VanexportError("INT8 needs calibration images", "pass --calib DIR (a folder of real images)")
    plans = [_check_engine_files(p) for p in engines]
    if timing_cache and not Path(timing_cache).is_file():
        raise VanexportError(f"timing cache '{timing_cache}' not found", "pass the file `vanexport trt --timing-cache` wrote")
    if output:
        check_output_path(output)
    label_names = None
    if labels:
        from ..data.labels import read_labels

        label_names = read_labels(labels)
    warns: list[str] = []

    with tempfile.TemporaryDirectory(prefix="vanexport-bundle-") as work:
        work = Path(work)
        fp32, fp32_validation, weights_info = _fp32_onnx(variant, weights, model, img_size, seed, work, step, warns,
                                                         validate, images, len(label_names) if label_names else None)
        from ..export.metadata import read_metadata

        meta = read_metadata(fp32)
        stem = _stem(meta)
        out = Path(output) if output else Path("engines") / f"{stem}_bundle.tar.gz"
        if not output:
            out.parent.mkdir(parents=True, exist_ok=True)
        check_output_path(out)

        files: dict[str, Path | bytes] = {f"onnx/{stem}_fp32.onnx": fp32}
        models = [_model_entry(f"onnx/{stem}_fp32.onnx", fp32, "fp32", fp32_validation,
                               {"tool": f"vanexport {meta.vanexport_version} onnx", "exporter": meta.exporter,
                                "opset": meta.opset, "weights": weights_info})]
        fp32_sha = sha256_file(fp32)
        # An engine built from an FP16/INT8 file converted from this FP32 one ships with that very file.
        reused = _engine_sources(plans, fp32_sha)
        for prec in [p for p in PRECISIONS[1:] if p in precisions or p in reused]:
            made_by = {"source": f"onnx/{stem}_fp32.onnx", "source_sha256": fp32_sha}
            if prec in reused:
                path, validation = reused[prec], None
                made_by["tool"] = f"vanexport {read_metadata(path).vanexport_version} (the source of a bundled engine)"
                step(f"taking {path.name}, the {prec.upper()} source of a bundled engine")
            else:
                path, record = _convert(prec, fp32, calib, num_calib, work / f"{stem}_{prec}.onnx", step)
                validation = record.get("validation")
                made_by["tool"] = f"vanexport {__version__} {'fp16' if prec == 'fp16' else 'quantize'}"
                made_by.update({k: v for k, v in record.items() if k in ("kept_fp32", "converted_nodes", "seconds")})
                if record.get("calibration"):
                    made_by["calibration"] = {k: v for k, v in record["calibration"].items() if k != "cache"}
            if validation is None and validate:
                step(f"validating the {prec.upper()} ONNX against PyTorch")
                from ..validate import validate as run_validate

                validation = run_validate(path, weights=weights, images=images, seed=seed).to_dict()
            name = f"onnx/{stem}_{prec}.onnx"
            files[name] = path
            models.append(_model_entry(name, path, prec, validation, made_by))
        for m in models:
            if m["validation"] and not m["validation"].get("passed", True):
                warns.append(f"{m['precision'].upper()} failed its validation; devices will not pick it automatically")

        step("running every ONNX file on the check images (ONNX Runtime CPU)")
        files[CHECK_FILE] = _check_images(meta, {m["precision"]: files[m["file"]] for m in models}, check_images)

        names, labels_source = _labels(label_names, labels, weights_info, meta.num_classes)
        files[LABELS_FILE] = ("\n".join(names) + "\n").encode()

        onnx_by_sha = {m["sha256"]: m["file"] for m in models}
        engine_entries = []
        for plan, manifest_path in plans:
            entry = _engine_entry(plan, manifest_path, onnx_by_sha)
            files[entry["file"]], files[entry["manifest"]] = plan, manifest_path
            engine_entries.append(entry)
        if timing_cache:
            files[TIMING_CACHE_FILE] = Path(timing_cache)

        manifest = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "created_at": _now(),
            "created_by": _provenance(),
            "model": {"family": "VAN", "variant": meta.variant, "num_classes": meta.num_classes,
                      "weights": weights_info},
            "preprocessing": meta.preprocessing,
            "io": {"input": {"name": meta.input_name, "dtype": "float32", "shape": meta.input_shape, "layout": "NCHW"},
                   "output": {"name": meta.output_name, "dtype": "float32",
                              "shape": [meta.input_shape[0], meta.num_classes], "meaning": "logits"}},
            "labels": {"file": LABELS_FILE, "count": len(names), "source": labels_source},
            "models": models,
            "engines": engine_entries,
            "timing_cache": TIMING_CACHE_FILE if timing_cache else None,
            "check": {"file": CHECK_FILE, "images": _check_names(files[CHECK_FILE]),
                      "logits": "ONNX Runtime CPU outputs of each ONNX file on these images"},
            "history": [{"at": _now(), "event": "bundle created", "by": f"vanexport {__version__}"}],
        }
        files[README_FILE] = _readme(manifest).encode()
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
    step = progress or (lambda msg: None)
    bundle = Path(bundle)
    plan_path, manifest_path = _check_engine_files(plan, manifest)
    if timing_cache is not None and not Path(timing_cache).is_file():
        raise VanexportError(f"timing cache '{timing_cache}' not found", "pass the cache file the build wrote")
    with tempfile.TemporaryDirectory(prefix="vanexport-bundle-") as work:
        root = Path(work) / "b"
        step(f"checking {bundle}")
        old = read_bundle(bundle, root)
        onnx_by_sha = {m["sha256"]: m["file"] for m in old["models"]}
        entry = _engine_entry(plan_path, manifest_path, onnx_by_sha)
        if validation is not None:
            entry["validation"] = validation
        engines = [e for e in old["engines"] if e["file"] != entry["file"]] + [entry]
        files: dict[str, Path | bytes] = {name: root / name for name in old["files"]}
        for e in old["engines"]:
            if e["file"] == entry["file"]:
                files.pop(e["file"], None)
                files.pop(e["manifest"], None)
        files[entry["file"]], files[entry["manifest"]] = plan_path, manifest_path
        new = dict(old, engines=engines)
        if timing_cache is not None:
            files[TIMING_CACHE_FILE] = Path(timing_cache)
            new["timing_cache"] = TIMING_CACHE_FILE
        e = entry
        new["history"] = list(old.get("history", [])) + [{
            "at": _now(), "event": f"engine {Path(e['file']).name} added",
            "by": f"vanexport {__version__}", "tensorrt": e.get("tensorrt_version"), "gpu": e.get("gpu_name")}]
        new["created_by"] = dict(old.get("created_by", {}), last_modified_by=_provenance())
        files[README_FILE] = _readme(new).encode()
        step(f"rewriting {bundle}")
        return _write(bundle, new, files, [])


def _write(out: Path, manifest: dict, files: dict, warns: list[str]) -> BundleResult:
    entries = {}
    for name, src in files.items():
        data = src if isinstance(src, bytes) else None
        entries[name] = {"sha256": _sha(src), "size": len(data) if data is not None else Path(src).stat().st_size}
    manifest = dict(manifest, files=dict(sorted(entries.items())))
    with atomic_output(out) as tmp:
        write_archive(tmp, manifest, files)
        digest, size = sha256_file(tmp), tmp.stat().st_size
    return BundleResult(str(out), digest, size, SCHEMA_VERSION, manifest["model"]["variant"],
                        manifest["model"]["num_classes"],
                        [{k: m[k] for k in ("precision", "file", "sha256")} | {"fidelity": _fidelity(m["validation"])}
                         for m in manifest["models"]],
                        manifest["engines"], manifest["labels"], manifest["timing_cache"] is not None,
                        manifest["files"], warns)


def _sha(src) -> str:
    import hashlib

    return hashlib.sha256(src).hexdigest() if isinstance(src, bytes) else sha256_file(src)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _provenance() -> dict:
    from ..info import package_versions

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


def _stem(meta) -> str:
    name = f"van_{meta.variant}_" + ("dynhw" if meta.dynamic_hw else str(meta.img_size))
    return name + ("" if meta.dynamic_batch else f"_bs{meta.input_shape[0]}")


def _fp32_onnx(variant, weights, model, img_size, seed, work: Path, step, warns, validate: bool, images, n_labels):
    """The FP32 ONNX file, its validation against PyTorch, and what the weights were."""
    def check_labels(num_classes):  # before the slow work where possible
        if n_labels is not None and n_labels != num_classes:
            raise VanexportError(f"the labels file has {n_labels} lines but the model has {num_classes} classes",
                                 "give one name per class, in class-index order")

    if model is not None:
        from ..export.metadata import read_metadata
        from ..validate import validate as run_validate

        model = Path(model)
        if not model.is_file():
            raise VanexportError(f"model file '{model}' not found", "pass an FP32 .onnx made by `vanexport onnx`")
        meta = read_metadata(model)
        if meta.precision != "fp32":
            raise VanexportError(f"'{model}' is {meta.precision.upper()}, not FP32",
                                 "pass the FP32 ONNX file; the bundle converts it to the other precisions")
        check_labels(meta.num_classes)
        report = None
        if validate:
            step(f"validating {model.name} against PyTorch")
            report = run_validate(model, weights=weights, images=images, seed=seed).to_dict()
        info = {"source": meta.weights_source, "layout": meta.weights_layout, "sha256": meta.weights_sha256,
                "random": meta.weights_layout == "random"}
        return model, report, info
    from ..export.onnx import export_onnx

    result = export_onnx(variant, weights, img_size=img_size, output=work / "fp32.onnx", seed=seed, progress=step,
                         validate=validate and not images)
    check_labels(result.weights["num_classes"])
    warns += result.warnings
    info = {k: result.weights[k] for k in ("source", "layout", "sha256", "random")}
    validation = result.validation
    if validate and images:
        from ..validate import validate as run_validate

        step("validating the FP32 ONNX against PyTorch on the held-out images")
        validation = run_validate(result.path, weights=weights, images=images, seed=seed).to_dict()
    return Path(result.path), validation, info


def _convert(precision: str, fp32: Path, calib, num_calib: int, out: Path, step) -> tuple[Path, dict]:
    """Convert with the precision module; validation happens afterwards, so a file that fails it is still
    bundled (marked as failed, never picked by a device) and the user sees the numbers."""
    from ..export import precision as conv

    step(f"converting to {precision.upper()}")
    record = conv.convert_fp16(fp32, out, progress=step) if precision == "fp16" else \
        conv.quantize_int8(fp32, calib, out, num_calib=num_calib, progress=step)
    return Path(record.path), record.to_dict()


def _model_entry(name: str, path: Path, precision: str, validation: dict | None, made_by: dict) -> dict:
    return {"file": name, "precision": precision, "sha256": sha256_file(path), "made_by": made_by,
            "validation": {k: v for k, v in validation.items() if k != "model"} if validation else None}


def _fidelity(validation: dict | None) -> dict | None:
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
    import io

    from ..data.images import check_crops
    from ..data.preprocess import normalize
    from ..runtime.classify import run_batched
    from ..runtime.onnxruntime_backend import OnnxRuntimeBackend

    pre = meta.preprocess
    pixels, names = check_crops(pre, folder)
    x = normalize(pixels, pre)
    arrays = {"pixels": pixels, "names": np.array(names)}
    for prec, path in onnx_files.items():
        arrays[f"logits_{prec}"] = run_batched(OnnxRuntimeBackend(path), x, None if meta.dynamic_batch else meta.input_shape[0])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _check_names(npz_bytes: bytes) -> list[str]:
    import io

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
    from ..export.metadata import read_metadata

    out = {}
    for _, manifest_file in plans:
        try:
            source = json.loads(manifest_file.read_text()).get("source_onnx") or {}
        except (ValueError, OSError):
            continue  # reported by _engine_entry
        path = Path(source.get("path") or "")
        if source.get("precision") in ("fp16", "int8") and path.is_file() and sha256_file(path) == source.get("sha256"):
            meta = read_metadata(path)
            if meta.extra.get("source_sha256") == fp32_sha and meta.precision == source["precision"]:
                out[meta.precision] = path
    return out


def _check_engine_files(plan, manifest=None) -> tuple[Path, Path]:
    from ..trt.manifest import manifest_path

    plan = Path(plan)
    if not plan.is_file():
        raise VanexportError(f"engine '{plan}' not found", "pass a .plan written by `vanexport trt`")
    manifest = Path(manifest) if manifest else manifest_path(plan)
    if not manifest.is_file():
        raise VanexportError(f"engine '{plan.name}' has no manifest ({manifest.name} is missing)",
                             "rebuild it with `vanexport trt`, which writes the manifest beside the plan")
    return plan, manifest


def _engine_entry(plan: Path, manifest_file: Path, onnx_by_sha: dict[str, str]) -> dict:
    """The bundle manifest's entry for a plan, after checking its hash and that it came from a bundled ONNX."""
    from ..runtime.select import engine_summary
    from ..trt.manifest import SCHEMA, manifest_path

    try:
        manifest = json.loads(manifest_file.read_text())
    except (ValueError, OSError) as e:
        raise VanexportError(f"engine manifest '{manifest_file}' is not valid JSON", "rebuild the engine") from e
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise VanexportError(f"'{manifest_file.name}' is not an engine manifest ({SCHEMA})",
                             "pass the manifest `vanexport trt` wrote beside the plan")
    facts = engine_summary(manifest)
    digest = sha256_file(plan)
    if facts["plan_sha256"] and facts["plan_sha256"] != digest:
        raise VanexportError(f"'{plan.name}' does not match the sha256 in its manifest",
                             "the plan was changed after it was built; rebuild it")
    if facts["onnx_sha256"] not in onnx_by_sha:
        raise VanexportError(f"'{plan.name}' was not built from any ONNX file in this bundle",
                             "build it from the bundle's ONNX (vanexport trt --bundle), or bundle its source ONNX")
    entry = {"file": f"engines/{plan.name}", "manifest": f"engines/{manifest_path(plan).name}", "sha256": digest,
             "source": onnx_by_sha[facts["onnx_sha256"]], "validation": manifest.get("validation"),
             **{k: v for k, v in facts.items() if k not in ("onnx_sha256", "plan_sha256")}}
    return entry


def _readme(m: dict) -> str:
    model, pre = m["model"], m["preprocessing"]
    rows = []
    for e in m["models"]:
        rows.append(f"  {e['file']:<40} {e['precision'].upper():<5} {fidelity_summary(_fidelity(e['validation']))}")
    for e in m["engines"]:
        rows.append(f"  {e['file']:<40} {str(e['precision']).upper():<5} TensorRT {e['tensorrt_version']}, "
                    f"sm_{e['compute_capability']} ({e['gpu_name']})")
    return f"""VAN-{model['variant']} classifier bundle ({model['num_classes']} classes), made by vanexport {m['created_by']['vanexport']}
{'=' * 78}
Weights: {model['weights'].get('source')} (sha256 {str(model['weights'].get('sha256'))[:16]}){chr(10) + "         RANDOM WEIGHTS: for testing the pipeline only, predictions are meaningless" if model['weights'].get('random') else ""}
Input:   '{m['io']['input']['name']}' float32 NCHW {m['io']['input']['shape']}, RGB.
         Resize the short side to {pre['resize_size']} ({pre['interpolation']}), centre-crop {pre['input_size']},
         scale to [0, 1], normalise with mean {pre['mean']} and std {pre['std']}.
Output:  '{m['io']['output']['name']}' float32 logits. Class names: {m['labels']['file']}, from {m['labels']['source']}.

Files (sha256 of each in manifest.json; `vanexport unpack` checks them all):
{chr(10).join(rows)}
  {m['check']['file']:<40} check images and each ONNX file's expected logits

On the device (no PyTorch needed):
  pip install --no-deps vanexport && pip install numpy pillow click rich onnxruntime   # or onnxruntime-gpu
  vanexport predict photo.jpg --model THIS_BUNDLE.tar.gz        # picks TensorRT > ONNX Runtime CUDA > CPU, says which
  vanexport trt --bundle THIS_BUNDLE.tar.gz --fp16              # build an engine for this GPU into the bundle
  vanexport unpack THIS_BUNDLE.tar.gz -o van/                   # checked unpacking, e.g. for trtexec
Serving:
  vanexport triton THIS_BUNDLE.tar.gz -o model_repository/
  vanexport deepstream THIS_BUNDLE.tar.gz -o config_infer.txt
Engines are tied to the TensorRT version and GPU that built them; the ONNX files run anywhere.
"""


@dataclass
class Bundle:
    """An unpacked, checked bundle: its folder and manifest, with the paths a runtime needs."""

    root: Path
    manifest: dict
    source: str = ""

    def file(self, name: str) -> Path:
        return self.root / name

    @property
    def variant(self) -> str:
        return self.manifest["model"]["variant"]

    @property
    def num_classes(self) -> int:
        return int(self.manifest["model"]["num_classes"])

    @property
    def preprocessing(self):
        from ..model.variants import Preprocessing

        return Preprocessing.from_dict(self.manifest["preprocessing"])

    @property
    def labels(self) -> list[str]:
        return self.file(self.manifest["labels"]["file"]).read_text(encoding="utf-8").rstrip("\n").split("\n")

    @property
    def precisions(self) -> list[str]:
        return [m["precision"] for m in self.manifest["models"]]

    def onnx(self, precision: str = "fp32") -> Path:
        for m in self.manifest["models"]:
            if m["precision"] == precision:
                return self.file(m["file"])
        raise VanexportError(f"the bundle has no {precision.upper()} ONNX file",
                             f"it has {', '.join(p.upper() for p in self.precisions)}")

    @property
    def engines(self) -> list[dict]:
        """Engine entries with absolute `plan_path`, `manifest_path` and the plan's own manifest."""
        out = []
        for e in self.manifest["engines"]:
            mpath = self.file(e["manifest"])
            out.append(dict(e, plan_path=str(self.file(e["file"])), manifest_path=str(mpath),
                            plan_manifest=json.loads(mpath.read_text())))
        return out

    @property
    def timing_cache(self) -> Path | None:
        name = self.manifest.get("timing_cache")
        return self.file(name) if name else None

    def _check(self):
        return np.load(self.file(self.manifest["check"]["file"]), allow_pickle=False)

    def check_pixels(self) -> tuple[np.ndarray, list[str]]:
        """The check images as 8-bit crops (N, H, W, 3), and their names."""
        with self._check() as z:
            return z["pixels"], [str(n) for n in z["names"]]

    def check_inputs(self) -> np.ndarray:
        """The check images, preprocessed: float32 (N, 3, H, W), ready for the model."""
        from ..data.preprocess import normalize

        return normalize(self.check_pixels()[0], self.preprocessing)

    def expected_logits(self, precision: str = "fp32") -> np.ndarray:
        """The bundled ONNX file's logits on `check_inputs()` (ONNX Runtime CPU, when the bundle was made)."""
        with self._check() as z:
            key = f"logits_{precision}"
            if key not in z:
                raise VanexportError(f"the bundle has no {precision.upper()} check logits", "rebuild the bundle")
            return z[key]


def check_engine_against_bundle(bundle: Bundle, backend, precision: str, max_batch: int = 8) -> dict:
    """Run `backend` (e.g. a freshly built plan) on the bundle's check images and compare with the bundled ONNX
    file's recorded outputs, with the tolerance of an engine of that precision. No PyTorch needed: this is the
    check `vanexport trt --bundle` records with an engine it builds on the device."""
    from .. import metrics
    from ..runtime.classify import run_batched
    from ..validate import engine_tolerance, verdict_failures

    tol = engine_tolerance(precision)
    x, reference = bundle.check_inputs(), bundle.expected_logits(precision)
    overall = metrics.compare_logits(run_batched(backend, x, batch=max_batch), reference)
    failures = verdict_failures(overall, tol, polygraphy_passed=overall["max_abs_err"] <= tol.atol)
    return {"reference": f"bundled {precision} ONNX (ONNX Runtime CPU, recorded)", "precision": precision,
            "tolerance": asdict(tol), "overall": overall, "passed": not failures, "failures": failures}


def open_bundle(path: str | os.PathLike, dest: str | os.PathLike | None = None) -> Bundle:
    """Check a bundle and unpack it: into `dest` (a new folder), or by default into the cache, keyed by the
    archive's sha256 (reused, after re-checking every file's hash, when the same bundle is opened again)."""
    from ..model.checkpoints import cache_dir
    from .archive import extract_verified

    path = Path(path)
    if dest is not None:
        return Bundle(Path(dest), extract_verified(path, dest), str(path))
    if not path.is_file():
        raise VanexportError(f"bundle '{path}' not found", "pass a .tar.gz made by `vanexport bundle`")
    target = cache_dir() / "bundles" / sha256_file(path)[:24]
    manifest_file = target / MANIFEST
    if manifest_file.is_file():
        manifest = json.loads(manifest_file.read_text())
        if not verify_tree(target, manifest):
            return Bundle(target, manifest, str(path))
        shutil.rmtree(target, ignore_errors=True)  # changed since it was unpacked: unpack again
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        manifest = extract_verified(path, target)
    except VanexportError:
        if (target / MANIFEST).is_file():  # another process unpacked the same bundle meanwhile
            return open_bundle(path)
        raise
    return Bundle(target, manifest, str(path))


def unpack_bundle(path: str | os.PathLike, dest: str | os.PathLike) -> dict:
    """`vanexport unpack`: check a bundle and unpack it into the new folder `dest`; return a short record."""
    manifest = open_bundle(path, dest).manifest
    return {"bundle": str(path), "folder": str(dest), "schema_version": manifest["schema_version"],
            "variant": manifest["model"]["variant"], "files": manifest["files"], "verified": True}
