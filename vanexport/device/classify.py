"""Classify images with a bundle, an ONNX file or a TensorRT plan, using only numpy, Pillow and ONNX Runtime,
OpenVINO or TensorRT (no PyTorch, no `onnx` package): what a device runs.

`load_classifier` picks the best backend that works here (see `select.choose`) and says which and why.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import VanexportError
from ..formats.names import RUNTIME_PRECISIONS, kind_of
from ..runtime.batching import batch_limits, run_batched
from . import select


@dataclass
class PredictResult:
    model: str
    backend: dict
    device: dict
    predictions: list[dict]
    skipped_images: list[str] = field(default_factory=list)
    skipped_reasons: list[str] = field(default_factory=list)  # one line each, in the order of skipped_images
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Classifier:
    """A backend plus what turns images into its input and its output into class names."""

    def __init__(self, backend, choice: select.Choice, labels: list[str], preprocessing, static_batch: int | None,
                 source: str, device: select.Device, random_weights: bool = False):
        self.backend, self.choice, self.labels = backend, choice, labels
        self.preprocessing, self.static_batch, self.source, self.device = preprocessing, static_batch, source, device
        self.random_weights = random_weights  # what the model says about itself: its classes mean nothing

    def describe(self) -> dict:
        d = self.choice.to_dict()
        d["providers"] = list(getattr(self.backend, "providers", []))
        return d

    def logits(self, x: np.ndarray) -> np.ndarray:
        # a TensorRT engine takes its profile's batch range; a static-batch ONNX only its batch
        size, min_size = batch_limits(self.static_batch, getattr(self.backend, "profile", None))
        return run_batched(self.backend, np.asarray(x, np.float32), size, min_size)

    def classify(self, images, topk: int = 5) -> list[list[dict]]:
        """PIL images or HxWx3 uint8 arrays -> for each, the top-k classes with softmax probabilities."""
        from ..data.preprocess import preprocess_image

        return self.top(np.stack([preprocess_image(im, self.preprocessing) for im in images]), topk)

    def top(self, x: np.ndarray, topk: int = 5) -> list[list[dict]]:
        """Preprocessed images (N, 3, H, W) -> for each, the top-k classes with softmax probabilities."""
        probs = softmax(self.logits(x))
        k = max(1, min(topk, probs.shape[1]))
        out = []
        for p in probs:
            idx = np.argsort(-p, kind="stable")[:k]
            out.append([{"index": int(i), "label": self.labels[i] if i < len(self.labels) else str(i),
                         "probability": float(p[i])} for i in idx])
        return out


def load_classifier(model: str | os.PathLike, *, backend: str = "auto", precision: str | None = None,
                    device: select.Device | None = None, progress: Callable[[str], None] | None = None) -> Classifier:
    """Open a bundle (.tar.gz, checked and unpacked into the cache), an ONNX file or a plan, and build the best
    backend that starts here: a fitting TensorRT plan, else ONNX Runtime CUDA, else the fastest CPU backend.
    `precision` "bf16" runs the FP32 file in BF16 through OpenVINO, where the CPU has it."""
    step = progress or (lambda msg: None)
    if backend != "auto" and backend not in select.BACKENDS:
        raise VanexportError(f"unknown backend '{backend}'", f"choose auto or one of {', '.join(select.BACKENDS)}")
    path = Path(model)
    if not path.exists():
        raise VanexportError(f"model '{path}' not found", "pass a bundle (.tar.gz), an .onnx file or a .plan")
    device = device or select.probe_device()
    _check_openvino_request(backend, precision, device)
    runtime_precision = precision if precision in RUNTIME_PRECISIONS else None
    kind = kind_of(path)
    if kind == "bundle":
        candidates, info = _from_bundle(path, step)
    elif kind == "onnx":  # its precision is in its metadata, read once a backend has opened it
        file_precision = "fp32" if runtime_precision else precision or "unknown"
        candidates, info = [select.Candidate("onnx", str(path), file_precision)], None
    elif kind == "plan":
        candidates, info = _from_plan(path)
    else:
        raise VanexportError(f"cannot tell what '{path.name}' is", "pass a bundle (.tar.gz), an .onnx file or a .plan")

    choices = select.choose(candidates, device, backend, runtime_precision if kind == "onnx" else precision)
    choices = _fastest_here(choices, step)
    failures: list[str] = []
    for choice in choices:
        try:
            step(f"starting {choice.backend} on {Path(choice.candidate.path).name}")
            runner = _start(choice)
        except VanexportError as e:
            failures.append(f"{choice.backend} on {Path(choice.candidate.path).name}: {e.problem}")
            continue
        choice.skipped += failures
        if hasattr(runner, "precision_note"):  # OpenVINO says which precision its compiled graph runs in
            choice.reason += f": {runner.precision_note}"
        if info is None:  # a bare ONNX file describes itself in its metadata
            info = _onnx_info(runner, path)
            if runtime_precision and info["precision"] != "fp32":
                raise VanexportError(f"{runtime_precision.upper()} runs an FP32 file, and '{path.name}' is "
                                     f"{info['precision'].upper()}", "pass the FP32 ONNX file")
            choice.candidate = select.Candidate("onnx", str(path), info["precision"])
        return Classifier(runner, choice, info["labels"], info["preprocessing"], info["static_batch"], str(path), device,
                          info.get("random_weights", False))
    reasons = "; ".join((choices[0].skipped if choices else []) + failures) or "no model file fits the request"
    raise VanexportError(f"no backend can run '{path.name}' here ({reasons})",
                         "install onnxruntime (CPU) or onnxruntime-gpu, or ask for another --backend/--precision")


def _fastest_here(choices: list[select.Choice], step) -> list[select.Choice]:
    """The CPU ways in the order measured on this machine (device/speed.py: timed on first use, then cached), when
    there is more than one and no GPU way leads."""
    cpu = [c for c in choices if c.backend in select.CPU_CHOICE_BACKENDS]
    if len(cpu) < 2 or choices[0] is not cpu[0]:
        return choices
    from . import speed

    if cpu[0].candidate.kind == "onnx":  # a bare file must be what its metadata says before it is timed or cached
        first = next((c for c in cpu if c.backend != "openvino"), cpu[0])  # OpenVINO would cache its compile
        _onnx_info(_start(first), Path(first.candidate.path))
    ms, notes = speed.measure(choices, _start, speed.sample_input, progress=step)
    ordered = select.by_measured_speed(choices, ms)
    for c in ordered:
        c.skipped += notes
    return ordered


def _check_openvino_request(backend: str, precision: str | None, device: select.Device) -> None:
    """What only OpenVINO can do, asked of a machine or backend that cannot: one clear line, before any work."""
    needs_openvino = backend == "openvino" or precision in RUNTIME_PRECISIONS
    if precision in RUNTIME_PRECISIONS and backend not in ("auto", "openvino"):
        raise VanexportError(f"only OpenVINO computes an FP32 file in {precision.upper()}, not {backend}",
                             "pass --backend openvino (or auto)")
    if needs_openvino and device.openvino is None:
        raise VanexportError("OpenVINO is not installed", select.OPENVINO_HINT)


def _start(choice: select.Choice):
    c = choice.candidate
    if choice.backend == "tensorrt":
        try:
            from ..runtime.tensorrt_backend import TensorRTBackend

            return TensorRTBackend(c.path)
        except VanexportError:
            raise
        except (ImportError, OSError, RuntimeError, TypeError) as e:  # missing TensorRT, CUDA failure, bad plan
            raise VanexportError(f"TensorRT could not load the plan ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})",
                                 "use ONNX Runtime") from e
    if choice.backend == "openvino":
        from ..files import cache_folder
        from ..runtime.openvino_backend import OpenVinoBackend

        # OpenVINO's compiled-model cache: a warm start skips most of the compile (docs/benchmarks.md)
        return OpenVinoBackend(c.path, precision=choice.compute_precision or "fp32",
                               cache_dir=cache_folder("openvino"))
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise VanexportError("ONNX Runtime is not installed", "pip install onnxruntime (or onnxruntime-gpu)") from e
    from ..runtime.onnxruntime_backend import OnnxRuntimeBackend

    if choice.backend == "onnxruntime-cuda":
        runner = OnnxRuntimeBackend(c.path, providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
        if runner.providers[0] != "CUDAExecutionProvider":
            raise VanexportError("the CUDA provider did not start (no usable GPU or CUDA libraries)")
        return runner
    return OnnxRuntimeBackend(c.path)


def _from_bundle(path: Path, progress=None):
    from .bundle import open_bundle

    b = open_bundle(path, progress=progress)
    cands = [select.Candidate("onnx", str(b.file(m.file)), m.precision, None, m.validated) for m in b.manifest.models]
    cands += [select.Candidate("plan", str(e.plan_path), e.entry.precision, e.manifest, e.entry.validated)
              for e in b.engines]
    return cands, {"labels": b.labels, "preprocessing": b.preprocessing, "static_batch": b.static_batch,
                   "random_weights": b.random_weights}


def _from_plan(path: Path):
    from ..data.labels import default_labels
    from ..formats.engine_manifest import read_manifest
    from ..model.variants import Preprocessing

    m = read_manifest(path)
    labels, _ = default_labels(int(m.num_classes))
    return [select.Candidate("plan", str(path), m.precision, m, m.validated)], {
        "labels": labels, "preprocessing": Preprocessing.from_dict(m.preprocessing), "static_batch": None,
        "random_weights": m.model.get("weights_layout") == "random"}


def _onnx_info(runner, path: Path) -> dict:
    from ..data.labels import default_labels
    from ..formats.onnx_metadata import ModelMetadata

    meta = ModelMetadata.from_props(runner.metadata)
    runner.check_matches(meta, path.name)
    labels, _ = default_labels(meta.num_classes)
    return {"labels": labels, "preprocessing": meta.preprocess, "precision": meta.precision,
            "static_batch": meta.static_batch, "random_weights": meta.weights_layout == "random"}


def image_files(paths) -> list[Path]:
    """The files to classify: the given files, and the images in the given folders (recursively)."""
    from ..data.images import list_images

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += list_images(p)
        elif p.exists() or p.is_symlink():
            files.append(p)  # a pipe or device is refused (and counted) when it is opened
        else:
            raise VanexportError(f"image '{p}' not found", "pass image files or folders")
    if not files:
        raise VanexportError("no image files in " + ", ".join(map(str, paths)), "pass .jpg/.png/.webp/.bmp files")
    return files


def read_images(files, pre) -> tuple[list[np.ndarray], list[str], list[str], list[str]]:
    """Open and preprocess image files, each on its own: a file that fails (unreadable, too large) costs only
    itself. Returns the arrays, their names, the files that failed and why (one line each)."""
    from ..data.images import open_image, unreadable_errors, unreadable_reason
    from ..data.preprocess import preprocess_image

    arrays, names, bad, reasons = [], [], [], []
    unreadable = unreadable_errors()
    for f in files:
        try:
            arrays.append(preprocess_image(open_image(f), pre))
            names.append(str(f))
        except unreadable as e:
            bad.append(str(f))
            reasons.append(unreadable_reason(f, e))
    return arrays, names, bad, reasons


def _some_image_reads(files) -> None:
    """Nothing to classify is one line, said before the model is touched: the first image that opens ends the look."""
    from ..data.images import open_image, unreadable_errors, unreadable_reason

    reasons = []
    for f in files:
        try:
            open_image(f)
            return
        except unreadable_errors() as e:
            reasons.append(unreadable_reason(f, e))
    more = f"; {len(reasons) - 1} more" if len(reasons) > 1 else ""
    raise VanexportError("none of the images could be read" + (f" ({reasons[0]}{more})" if reasons else ""),
                         "pass .jpg/.png/.webp/.bmp files")


PREDICT_CHUNK = 64  # images opened and classified at a time: memory stays flat however many are given


def predict(images, model: str | os.PathLike, *, topk: int = 5, backend: str = "auto", precision: str | None = None,
            progress=None) -> PredictResult:
    """`vanexport predict`: the top-k classes of each image file, and which backend computed them. `progress` (see
    vanexport.progress) counts the images."""
    from ..progress import as_progress

    if topk < 1:
        raise VanexportError(f"--topk {topk} is not positive", "pass --topk 1 or more")
    p = as_progress(progress)
    files = image_files(images)
    _some_image_reads(files)  # before any backend is started, timed or cached
    clf = load_classifier(model, backend=backend, precision=precision, progress=p)
    predictions, bad, reasons = [], [], []
    plural = "s" if len(files) != 1 else ""
    with p.task(f"classifying {len(files)} image{plural}", len(files), "images") as task:
        for i in range(0, len(files), PREDICT_CHUNK):
            arrays, names, unread, why = read_images(files[i:i + PREDICT_CHUNK], clf.preprocessing)
            bad += unread
            reasons += why
            if arrays:
                predictions += [{"image": n, "top": t} for n, t in zip(names, clf.top(np.stack(arrays), topk))]
            task.advance(len(files[i:i + PREDICT_CHUNK]))
    if not predictions:
        more = f"; {len(bad) - 1} more" if len(bad) > 1 else ""
        raise VanexportError("none of the images could be read" + (f" ({reasons[0]}{more})" if bad else ""),
                             "pass .jpg/.png/.webp/.bmp files")
    warnings = [f"'{Path(model).name}' holds a model with random weights: the classes below are meaningless (it was "
                "made to try the pipeline; bundle trained weights with --weights)"] if clf.random_weights else []
    return PredictResult(str(model), clf.describe(), clf.device.to_dict(), predictions, bad, reasons, warnings)
