"""`vanexport deepstream`: a DeepStream Gst-nvinfer classifier config, its label file and a softmax ONNX.

nvinfer feeds the network y = net-scale-factor * (x - offsets[c]) for 8-bit pixels x in 0..255. The model wants
y = (x / 255 - mean[c]) / std[c] = (x - 255 * mean[c]) / (255 * std[c]), so
    net-scale-factor = 1 / (255 * std)      (one factor for all channels: std must be equal across channels)
    offsets[c]       = 255 * mean[c]
For VAN (mean = std = 0.5): net-scale-factor = 1/127.5 = 0.00784313725490196 and offsets = 127.5;127.5;127.5.

nvinfer's classifier parser thresholds the output as probabilities, and VAN outputs logits, so the ONNX file
given to DeepStream has a Softmax appended (output `probabilities`). DeepStream builds its own engine from it on
first run and saves it under the name set in model-engine-file, so later runs start at once.
nvinfer scales the whole frame or object to 224x224; VAN was evaluated with resize-248-then-centre-crop, so
expect small differences from `vanexport predict` on the same picture.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import VanexportError
from ..files import atomic_output, check_output_path

NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}  # nvinfer network-mode values
PROB_OUTPUT = "probabilities"


@dataclass
class DeepStreamResult:
    config: str
    labels: str
    onnx: str
    engine_file: str
    precision: str
    net_scale_factor: float
    offsets: list[float]
    properties: dict
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def scale_and_offsets(mean, std) -> tuple[float, list[float]]:
    """nvinfer's net-scale-factor and per-channel offsets for a model normalised as (x/255 - mean) / std."""
    if max(std) - min(std) > 1e-12:
        raise VanexportError(f"std {list(std)} differs between channels, but nvinfer has one net-scale-factor",
                             "use a model normalised with one std, or nvdspreprocess with per-channel scaling")
    return 1.0 / (255.0 * std[0]), [255.0 * m for m in mean]


def softmax_onnx(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy an ONNX classifier with Softmax(axis=1) after its logits, as the output `probabilities`."""
    import onnx
    from onnx import helper

    from ..formats.onnx_metadata import read_metadata, write_metadata

    model = onnx.load(str(src))
    graph = model.graph
    logits = graph.output[0]
    graph.node.append(helper.make_node("Softmax", [logits.name], [PROB_OUTPUT], axis=1, name="vanexport_softmax"))
    prob = onnx.ValueInfoProto()
    prob.CopyFrom(logits)
    prob.name = PROB_OUTPUT
    del graph.output[:]
    graph.output.append(prob)
    meta = read_metadata(model)
    meta.output_name = PROB_OUTPUT
    write_metadata(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def deepstream_config(bundle: str | os.PathLike, output: str | os.PathLike, *, precision: str | None = None,
                      batch_size: int = 1, threshold: float = 0.5, gpu_id: int = 0, secondary: bool = False,
                      progress: Callable[[str], None] | None = None) -> DeepStreamResult:
    """Write `output` (config_infer.txt), `<stem>_labels.txt` and the softmax ONNX beside it."""
    from ..device.bundle import open_bundle

    step = progress or (lambda msg: None)
    out = check_output_path(output)
    if batch_size < 1:
        raise VanexportError(f"--batch-size {batch_size} is not positive", "pass 1 or more")
    if not 0.0 <= threshold <= 1.0:
        raise VanexportError(f"--threshold {threshold} is not a probability", "pass a value in 0..1")
    step(f"checking and unpacking {Path(bundle).name}")
    b = open_bundle(bundle)
    warns: list[str] = []
    if precision is None:  # FP16 where the bundle has it: the usual DeepStream choice on Jetson and dGPU
        precision = "fp16" if "fp16" in b.precisions else "fp32"
    src = b.onnx(precision)
    shape = b.manifest.io_input.shape
    if isinstance(shape[0], int) and batch_size != shape[0]:
        raise VanexportError(f"the ONNX file has a static batch of {shape[0]}", f"pass --batch-size {shape[0]}")
    if not all(isinstance(d, int) for d in shape[1:]):
        raise VanexportError("the ONNX file has dynamic height/width; nvinfer needs fixed infer-dims",
                             "bundle a model exported without --dynamic-hw")
    pre = b.preprocessing
    scale, offsets = scale_and_offsets(pre.mean, pre.std)

    folder = out.parent if str(out.parent) else Path(".")
    onnx_path = folder / f"{src.stem}_softmax.onnx"
    labels_path = folder / f"{out.stem}_labels.txt"
    engine_name = f"{onnx_path.name}_b{batch_size}_gpu{gpu_id}_{precision}.engine"  # the name nvinfer saves under
    props = {
        "gpu-id": gpu_id,
        "net-scale-factor": repr(scale),
        "offsets": ";".join(repr(o) for o in offsets),
        "model-color-format": 0,  # RGB, as VAN was trained
        "onnx-file": onnx_path.name,
        "model-engine-file": engine_name,
        "labelfile-path": labels_path.name,
        "batch-size": batch_size,
        "network-mode": NETWORK_MODE[precision],
        "network-type": 1,  # classifier
        "process-mode": 2 if secondary else 1,
        "infer-dims": ";".join(str(d) for d in shape[1:]),
        "network-input-order": 0,  # NCHW
        "output-blob-names": PROB_OUTPUT,
        "classifier-threshold": threshold,
        "maintain-aspect-ratio": 0,
        "gie-unique-id": 1,
    }
    if secondary:
        props.update({"operate-on-gie-id": 1, "classifier-async-mode": 1})
    body = [f"# DeepStream Gst-nvinfer config for VAN-{b.variant} ({precision.upper()}), written by vanexport {__version__}",
            f"# from {Path(bundle).name}. nvinfer computes y = net-scale-factor * (x - offsets[c]) on 0..255 pixels;",
            f"# VAN wants (x/255 - mean)/std with mean={list(pre.mean)} std={list(pre.std)}: factor 1/(255*std), offsets 255*mean.",
            f"# {onnx_path.name} is the bundle's {src.name} with a Softmax appended (output '{PROB_OUTPUT}').",
            "# DeepStream builds and saves model-engine-file on first run"
            + (" (INT8 from Q/DQ nodes: no int8-calib-file needed)." if precision == "int8" else "."),
            "[property]"] + [f"{k}={v}" for k, v in props.items()]

    step(f"writing {onnx_path.name} (softmax appended)")
    with atomic_output(onnx_path) as tmp:
        softmax_onnx(src, tmp)
    # nvinfer classifiers read one line per output layer, labels separated by ';'.
    with atomic_output(labels_path) as tmp:
        tmp.write_text(";".join(label.replace(";", ",") for label in b.labels) + "\n", encoding="utf-8")
    with atomic_output(out) as tmp:
        tmp.write_text("\n".join(body) + "\n")
    return DeepStreamResult(str(out), str(labels_path), str(onnx_path), engine_name, precision, scale, offsets,
                            props, warns)
