"""PyTorch VAN -> checked, simplified, self-describing, validated ONNX file."""
from __future__ import annotations

import io
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from ..errors import ValidationFailed, VanexportError
from ..files import atomic_output, check_output_path, sha256_file
from ..formats.names import DEFAULT_FOLDER, model_stem
from ..formats.onnx_metadata import ModelMetadata, write_metadata
from ..model.factory import random_weights_warning
from ..model.tasks import HEAD_NAMES, SegmentationPreprocessing
from ..model.variants import DEFAULT_VARIANT, check_fits_in_memory, check_img_size, get_variant

SUPPORTED_OPSETS = range(17, 21)  # 17: one LayerNormalization op (TensorRT's normalisation layer); 20: Gelu op
EXPORTERS = ("torchscript", "dynamo")
DYNAMO_MIN_OPSET = 18  # asked for 17, the dynamo exporter writes 18 after the whole export (its converter gives up)
INPUT_NAME, OUTPUT_NAME = "input", "logits"
FOLDED = "folded"  # metadata "form" of the deploy form (export/fold.py); faithful files have no "form"


@dataclass
class ExportResult:
    path: str
    sha256: str
    variant: str
    input_shape: list
    opset: int
    exporter: str
    simplified: bool
    simplify_note: str | None
    weights: dict
    seconds: dict
    validation: dict | None = None
    warnings: list[str] = field(default_factory=list)
    folded: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def default_output_path(variant: str, img_size: int, batch: int | None, dynamic_hw: bool,
                        precision: str = "fp32", folder: Path = DEFAULT_FOLDER, folded: bool = False,
                        task: str = "classify") -> Path:
    """Named from what it contains: van_b0_224.onnx (dynamic batch), van_b0_224_bs4.onnx, van_b0_dynhw.onnx,
    van_b0_224_folded.onnx (the deploy form), fpn_van_b0_512.onnx (Semantic FPN)."""
    name = model_stem(variant, img_size, batch, dynamic_hw, task) + (f"_{FOLDED}" if folded else "")
    return Path(folder) / (f"{name}_{precision}.onnx" if precision != "fp32" else f"{name}.onnx")


def export_onnx(variant: str | None = None, weights: str | None = None, *, num_classes: int | None = None,
                img_size: int = 224, batch: int | None = None, dynamic_hw: bool = False, opset: int = 17,
                simplify: bool = True, output: str | Path | None = None, validate: bool = True,
                exporter: str = "torchscript", seed: int = 0, fold: bool = False, loaded=None,
                task: str | None = None, progress: Callable[[str], None] | None = None) -> ExportResult:
    """Export a VAN to ONNX and check it against PyTorch.

    The task (classifier, Semantic FPN, UperNet) is the checkpoint's; `task` overrides it (and says which dense
    model random weights stand for). A segmentation model's output is its logits at 1/4 of the input.

    `batch=None` exports a dynamic batch axis; `batch=N` a static batch of N. `dynamic_hw` makes H and W
    dynamic too (multiples of 32). `fold` exports the deploy form for the CPU (BatchNorms and layer scales folded
    into the convolutions, export/fold.py), checked against the faithful model like any export.
    `loaded`: the (model, variant, WeightsInfo) of `load_model`, when the caller
    has loaded it already (the pipeline loads a model once for every stage). Nothing is written unless every
    step, validation included, succeeds.
    """
    step = progress or (lambda msg: None)
    check_img_size(img_size)
    if opset not in SUPPORTED_OPSETS:
        raise VanexportError(f"opset {opset} is not supported",
                             f"use --opset {SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1} "
                             "(17+ keeps LayerNorm one op, which TensorRT needs for FP16)")
    if exporter not in EXPORTERS:
        raise VanexportError(f"unknown exporter '{exporter}'", f"choose one of {', '.join(EXPORTERS)}")
    if exporter == "dynamo" and opset < DYNAMO_MIN_OPSET:  # refused before loading or exporting anything
        raise VanexportError(f"the dynamo exporter writes opset {DYNAMO_MIN_OPSET} or newer, not {opset}",
                             f"pass --opset {DYNAMO_MIN_OPSET} with --exporter dynamo, or use --exporter torchscript")
    if batch is not None and batch < 1:
        raise VanexportError(f"batch size {batch} is not positive", "pass --batch 1 or more, or --dynamic-batch")
    if variant is not None:
        variant = get_variant(variant).name
    from ..machine import available_memory_bytes

    available = available_memory_bytes()
    # before loading (a download can be large); without --variant, b0 (the smallest) is a lower bound
    check_fits_in_memory(get_variant(variant or DEFAULT_VARIANT), img_size, max(batch or 3, 3), available, "exporting")
    out_path = Path(output) if output else None
    if out_path:
        check_output_path(out_path)

    t0 = time.perf_counter()
    caught: list[str] = []
    if loaded is None:
        step("loading the model")
        from ..model.segmentation import load_for_task

        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            loaded = load_for_task(variant if variant or weights else DEFAULT_VARIANT, weights, num_classes,
                                   task=task, seed=seed)
        caught += [str(x.message) for x in w if issubclass(x.category, UserWarning)]
    elif loaded[2].is_random:
        caught.append(random_weights_warning(loaded[1].name, seed))
    model, v, info = loaded
    from ..model.segmentation import head_record, task_of

    task = task_of(model)
    _check_task_export(task, fold, dynamic_hw)
    check_fits_in_memory(v, img_size, max(batch or 3, 3), available, "exporting")
    if out_path is None:
        out_path = default_output_path(v.name, img_size, batch, dynamic_hw, folded=fold, task=task)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        check_output_path(out_path)
    t_load = time.perf_counter()

    exported = model
    if fold:
        step("folding BatchNorms and layer scales into the convolutions")
        from .fold import fold_van

        exported = fold_van(model)
    if validate:
        check_preprocess = v.preprocessing if task == "classify" else \
            SegmentationPreprocessing(input_size=img_size).square(img_size)
        _check_reference_is_finite(model, img_size, batch, dynamic_hw, check_preprocess, info, seed, step)
    step(f"exporting VAN-{v.name}{_what(task)} to ONNX (opset {opset}, {exporter} exporter)")
    proto, input_shape, dynamic_axes = _torch_export(exported, img_size, batch, dynamic_hw, opset, exporter,
                                                     spatial_output=task != "classify")
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:  # a bug on our side or the exporter's, not the user's
        raise RuntimeError(f"the exported graph fails onnx.checker: {e}") from e
    t_export = time.perf_counter()

    simplified, note = False, None
    if simplify:
        step("simplifying with onnxsim")
        rng = np.random.default_rng(seed)
        probe = [{INPUT_NAME: rng.uniform(-1, 1, (batch or 2, 3, img_size, img_size)).astype(np.float32)}]
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            from .simplify import simplify as run_simplify

            new_proto, note = run_simplify(proto, probe)
        caught += [str(x.message) for x in w]
        simplified, proto = note is None, new_proto
    t_simplify = time.perf_counter()

    if task == "classify":
        preprocessing, check_preprocess = v.preprocessing.at_size(img_size).to_dict(), v.preprocessing
    else:
        seg = SegmentationPreprocessing(input_size=img_size)
        preprocessing, check_preprocess = seg.to_dict(), seg.square(img_size)
    meta = ModelMetadata(
        variant=v.name, num_classes=info.num_classes, input_name=INPUT_NAME, output_name=OUTPUT_NAME,
        input_shape=input_shape, dynamic_axes=dynamic_axes, preprocessing=preprocessing, weights_sha256=info.sha256,
        weights_source=info.source, weights_layout=info.layout, opset=opset, exporter=exporter,
        vanexport_version=__version__, task=task, head=head_record(model), extra={"form": FOLDED} if fold else {})
    write_metadata(proto, meta)
    proto.producer_name, proto.producer_version = "vanexport", __version__
    proto.doc_string = (f"VAN-{v.name}{_what(task)} ({info.num_classes} classes) exported by vanexport {__version__}"
                        + (" (deploy form: BatchNorms and layer scales folded into the convolutions)" if fold else ""))

    report = None
    with atomic_output(out_path) as tmp:
        onnx.save(proto, str(tmp))
        if validate:
            from ..check.compare import compare
            from ..check.inputs import default_input_groups
            from ..check.tolerances import SEGMENTATION_FP32, TOLERANCES
            from ..runtime.onnxruntime_backend import OnnxRuntimeBackend

            groups = default_input_groups(input_shape, img_size, check_preprocess, seed=seed)
            tolerance = TOLERANCES["fp32"] if task == "classify" else SEGMENTATION_FP32
            report = compare(OnnxRuntimeBackend(tmp), model, groups, tolerance, str(tmp),
                             output_name=OUTPUT_NAME, progress=step,
                             description="validating against PyTorch (ONNX Runtime CPU)")
            if not report.passed:
                raise ValidationFailed(
                    f"the ONNX file does not match PyTorch: {'; '.join(report.failures)}; nothing was written",
                    "try --no-simplify or another --opset; --no-validate writes it anyway")
        digest = sha256_file(tmp)
    t_end = time.perf_counter()
    seconds = {"load": t_load - t0, "export": t_export - t_load, "simplify": t_simplify - t_export,
               "validate": t_end - t_simplify, "total": t_end - t0}
    return ExportResult(str(out_path), digest, v.name, input_shape, opset, exporter, simplified, note,
                        {"source": info.source, "layout": info.layout, "sha256": info.sha256,
                         "num_classes": info.num_classes, "random": info.is_random},
                        {k: round(s, 3) for k, s in seconds.items()},
                        report.to_dict() if report else None, caught, fold)


def _what(task: str) -> str:
    return "" if task == "classify" else f" {HEAD_NAMES[task]}"


def _check_task_export(task: str, fold: bool, dynamic_hw: bool) -> None:
    if task == "features":
        raise VanexportError("exporting backbone features (four outputs) is not supported yet",
                             "export the checkpoint's own model (drop --task), or use load_dense_model in Python")
    if fold and task != "classify":
        raise VanexportError(f"--fold is for classifiers; this checkpoint holds {HEAD_NAMES[task]}", "drop --fold")
    if dynamic_hw and task == "segment-upernet":
        raise VanexportError("UperNet exports at a fixed size only (its pyramid pooling is exported for that size)",
                             "drop --dynamic-hw and export one file per --img-size")


def _check_reference_is_finite(model, img_size, batch, dynamic_hw, preprocessing, info, seed, step) -> None:
    """Before exporting: the first check batch through PyTorch (kept, so validation does not run it again)."""
    from ..check.compare import ReferenceOutputs
    from ..check.inputs import default_input_groups
    from ..model.reference import check_finite
    from ..runtime.torch_backend import TorchBackend

    step("running the PyTorch reference on the first check batch")
    shape = _input_shape(img_size, batch, dynamic_hw)
    first = default_input_groups(shape, img_size, preprocessing, seed=seed)[0].batches[0]
    check_finite(ReferenceOutputs(TorchBackend(model))(first), info.source,
                 "use other weights (--weights); nothing was exported")


def _dynamic_axes(batch: int | None, dynamic_hw: bool) -> dict:
    return {**({0: "batch"} if batch is None else {}), **({2: "height", 3: "width"} if dynamic_hw else {})}


def _input_shape(img_size: int, batch: int | None, dynamic_hw: bool) -> list:
    """The input shape as ONNX records it: a name for each dynamic axis."""
    axes = _dynamic_axes(batch, dynamic_hw)
    return [axes.get(i, d) for i, d in enumerate((batch or 1, 3, img_size, img_size))]


def _torch_export(model, img_size: int, batch: int | None, dynamic_hw: bool, opset: int, exporter: str,
                  spatial_output: bool = False):
    import onnx
    import torch

    dynamic_axes = _dynamic_axes(batch, dynamic_hw)
    shape = _input_shape(img_size, batch, dynamic_hw)
    # Trace at batch 2 when the batch is dynamic, so no size-1 special case gets baked into the graph.
    example = torch.zeros(batch or 2, 3, img_size, img_size)
    out_axes = {0: "batch"} if batch is None else {}
    if spatial_output and dynamic_hw:  # segmentation logits at 1/4 of the input follow its H and W
        out_axes.update({2: "out_height", 3: "out_width"})
    axes = {INPUT_NAME: dict(dynamic_axes), OUTPUT_NAME: out_axes}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice is ours to decide
        if exporter == "torchscript":
            torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], dynamic_axes={k: v for k, v in axes.items() if v},
                              do_constant_folding=True)
            proto = onnx.load_from_string(buf.getvalue())
        else:
            program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset,
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        dynamic_axes={k: v for k, v in axes.items() if v}, verbose=False)
            proto = program.model_proto
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != opset:  # onnxscript's version converter gives up on some graphs and keeps its own opset
        raise VanexportError(f"the {exporter} exporter wrote opset {written}, not the {opset} asked for",
                             f"pass --opset {written}, or use the torchscript exporter")
    return proto, shape, {INPUT_NAME: {str(k): v for k, v in dynamic_axes.items()}}
