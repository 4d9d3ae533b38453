"""`vanexport deepstream`: a DeepStream Gst-nvinfer classifier config, its label file, a softmax ONNX and, for
full frames, an nvdspreprocess config that crops as VAN was evaluated. Runs on a device install (no onnx, no torch).

nvinfer feeds the network y = net-scale-factor * (x - offsets[c]) for 8-bit pixels x in 0..255. The model wants
y = (x / 255 - mean[c]) / std[c] = (x - 255 * mean[c]) / (255 * std[c]), so
    net-scale-factor = 1 / (255 * std)      (one factor for all channels: std must be equal across channels)
    offsets[c]       = 255 * mean[c]
For VAN (mean = std = 0.5): net-scale-factor = 1/127.5 = 0.00784313725490196 and offsets = 127.5;127.5;127.5.
nvdspreprocess's default tensor preparation takes the same pair (pixel-normalization-factor, offsets).

nvinfer's classifier parser thresholds the output as probabilities, and VAN outputs logits, so the ONNX file
given to DeepStream has a Softmax appended (output `probabilities`).

The crop. VAN is evaluated resize-short-side-248 / centre-crop-224; nvinfer scales the whole frame (or object)
to 224x224, a stretch (`maintain-aspect-ratio=1` pads instead: it never crops). For a full-frame classifier the
config therefore hands the crop to nvdspreprocess: a fixed ROI in nvstreammux's output, the very pixels the
evaluation keeps (a centred square of side about min(W, H) * 224 / 248), scaled to 224 with the GPU's cubic
filter: the same crop, taken before the resize instead of after it. `--images` measures what each choice does: the config's preprocessing emulated with Pillow
against the validated pipeline, top-1 agreement of the bundle's FP32 ONNX on both.

The engine. nvinfer builds its own engine from onnx-file on first run and saves it as
<onnx-file>_b<batch-size>_gpu<gpu-id>_<fp32|fp16|int8>.engine beside the ONNX (DeepStream 6.2 sources,
nvdsinfer_model_builder.cpp), which is the model-engine-file written here. INT8 is the exception: without an
int8-calib-file nvinfer logs "INT8 calibration file not specified. Trying FP16 mode.", builds FP16 and saves
`_fp16.engine`, so an `_int8` name is never found and it rebuilds on every start (and a weakly typed FP16 build of
a Q/DQ graph may fail outright). So INT8 needs `--build-engine`: vanexport builds the plan here, strongly typed,
checks it against the bundle, and model-engine-file names it (nvinfer checks batch size, input dims and output
names of a given engine, not its precision).

Where the label lands (DeepStream 9.1 sources, gst-nvinfer/gstnvinfer.cpp `gst_nvinfer_process_tensor_input` and
gstnvinfer_meta_utils.cpp `attach_metadata_classifier`). Without the crop, a full-frame classifier makes an object
meta covering the frame and puts the label in it (text_params and a classifier meta), where deepstream-app's OSD
and msgconv read it. With the crop (`input-tensor-from-meta=1`), nvinfer takes each ROI's object meta, which
nvdspreprocess leaves NULL for frames (gstnvdspreprocess.cpp: `roi_meta.object_meta = NULL`), makes none, and
adds the classifier meta to the ROI meta only (`nvds_add_classifier_meta_to_roi`): OSD and msgconv show nothing.
No config key changes that, so with the crop the config says so and `<stem>_roi_labels.py` is written beside it:
a pad probe (pyds) that copies each ROI's label into an object meta of its frame.

classifier-threshold: nvinfer keeps the most probable class whose probability is above the threshold, strictly
(ClassifyPostprocessor::parseAttributesFromSoftmaxLayers, nvdsinfer_context_impl_output_parsing.cpp, DeepStream
9.1). A top-1 of N classes is at least 1/N, often far below 0.5 for 1000 classes, so the default is 0: every frame
or object gets its top-1.
"""
from __future__ import annotations

import math
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from ..errors import VanexportError
from ..files import check_output_path, temp_folder_beside
from ..formats.fields import one_line, path_part
from .checked import REFUSED, bundle_facts, bundle_file_name

NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}  # nvinfer network-mode values
PROB_OUTPUT = "probabilities"
# NvBufSurfTransform_Inter / _Compute values (nvbufsurftransform.h), as nvinfer's and nvdspreprocess's parsers
# take them: 2 = Algo1, a true cubic on the GPU (the VIC's 5-tap filter on a Jetson unless compute is the GPU).
SCALING_FILTER_CUBIC = 2
COMPUTE_GPU = 1
PREPROCESS_UNIQUE_ID = 100  # nvdspreprocess's own id: apart from nvinfer ids (whose default is 15) and ours (1, 2)
# The sample library that ships with DeepStream (gst-nvdspreprocess/config_preprocess.txt of DeepStream 6.2 and 9.1).
CUSTOM_LIB = "/opt/nvidia/deepstream/deepstream/lib/gst-plugins/libcustom2d_preprocess.so"
# nvdspreprocess tensor-data-type values: NvDsDataType in nvds_roi_meta.h (DeepStream 9.1)
TENSOR_DATA_TYPE = {"float32": 0, "float16": 7}


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
    preprocessing: str  # "centre-crop" (nvdspreprocess ROI) or "stretch" (nvinfer scales the frame or object)
    preprocess_config: str | None = None
    roi: list[int] | None = None  # left, top, width, height in nvstreammux's output
    engine: dict | None = None  # --build-engine: the plan and its check against the bundle
    agreement: dict | None = None  # --images: top-1 agreement of the config's preprocessing with the validated one
    warnings: list[str] = field(default_factory=list)
    probe: str | None = None  # with the crop: the pad probe that moves each ROI's label to an object meta
    target: dict | None = None  # the DeepStream release (or TensorRT) a plan built here is checked against

    def to_dict(self) -> dict:
        return asdict(self)


def scale_and_offsets(mean, std) -> tuple[float, list[float]]:
    """nvinfer's net-scale-factor and per-channel offsets for a model normalised as (x/255 - mean) / std."""
    if max(std) - min(std) > 1e-12:
        raise VanexportError(f"std {list(std)} differs between channels, but nvinfer has one net-scale-factor",
                             "use a model normalised with one std, or nvdspreprocess with per-channel scaling")
    return 1.0 / (255.0 * std[0]), [255.0 * m for m in mean]


def softmax_onnx(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy an ONNX classifier with Softmax(axis=1) after its logits, as the output `probabilities` (its
    metadata says so), without the onnx package."""
    from ..formats.onnx_wire import metadata_from_file, with_softmax_output

    meta = metadata_from_file(src)
    meta.output_name = PROB_OUTPUT
    with_softmax_output(src, dst, PROB_OUTPUT, meta)


def parse_frame(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080)."""
    w, sep, h = str(text).lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise VanexportError(f"--frame {text!r} is not WIDTHxHEIGHT", "give nvstreammux's width and height, "
                             "e.g. --frame 1920x1080")
    return int(w), int(h)


def centre_roi(width: int, height: int, pre) -> tuple[int, int, int, int]:
    """(left, top, width, height): the part of a width x height frame that the validated preprocessing keeps
    (torchvision's geometry: the short side resized to `resize_size`, the long side truncated to an int, the crop
    offset rounded in the resized image), in frame pixels, to the nearest even values: nvdspreprocess rounds a
    ROI's left/top up and its width/height down to even numbers (DeepStream 6.2, gstnvdspreprocess.cpp)."""
    short, crop = pre.resize_size, pre.input_size
    rw, rh = (short, int(short * height / width)) if width <= height else (int(short * width / height), short)
    sx, sy = width / rw, height / rh

    def even(v: float) -> int:
        return 2 * round(v / 2)

    left, top = even(int(round((rw - crop) / 2.0)) * sx), even(int(round((rh - crop) / 2.0)) * sy)
    return left, top, min(even(crop * sx), (width - left) // 2 * 2), min(even(crop * sy), (height - top) // 2 * 2)


def emulate(image, pre, mode: str, roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The input the config gives the network for one full frame, as an HxWx3 uint8 RGB array (before the
    normalisation, which is exact): "centre-crop" crops the ROI (default: `centre_roi` of this frame, as if
    nvstreammux ran at its size), rounded as nvdspreprocess rounds it, and scales it with a cubic filter;
    "stretch" scales the whole frame, as nvinfer does. Pillow's bicubic (which antialiases when it shrinks)
    stands in for the GPU's cubic filter: close, not bit-exact (UNVERIFIED against DeepStream itself)."""
    from PIL import Image

    image = (Image.fromarray(image) if isinstance(image, np.ndarray) else image).convert("RGB")
    size = (pre.input_size, pre.input_size)
    if mode == "centre-crop":
        left, top, w, h = roi or centre_roi(*image.size, pre)
        left, top = left + left % 2, top + top % 2  # GST_ROUND_UP_2 / GST_ROUND_DOWN_2, as nvdspreprocess does
        w, h = min(w, image.size[0] - left) // 2 * 2, min(h, image.size[1] - top) // 2 * 2
        image = image.crop((left, top, left + w, top + h))
    return np.asarray(image.resize(size, resample=Image.Resampling.BICUBIC), dtype=np.uint8)


def measure_agreement(onnx_path, images: str | os.PathLike, pre, modes=("centre-crop", "stretch")) -> dict:
    """Top-1 agreement, on the images of folder `images`, between the validated preprocessing (resize + centre
    crop) and each emulated DeepStream preprocessing, with the FP32 ONNX on ONNX Runtime's CPU provider."""
    from ..data.images import list_images, open_image, unreadable_errors, unreadable_reason
    from ..data.preprocess import normalize, resize_and_crop
    from ..runtime.batching import run_batched
    from ..runtime.onnxruntime_backend import OnnxRuntimeBackend

    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise VanexportError("measuring the preprocessing (--images) needs ONNX Runtime",
                             "pip install 'vanexport[cpu]', or leave --images out") from e
    files = list_images(Path(images))
    if not files:
        raise VanexportError(f"no images in '{images}'", "pass a folder of .jpg/.png images (subfolders are read)")
    pics, skipped = [], []
    for f in files:  # an image that cannot be used costs only itself
        try:
            pics.append(open_image(f))
        except unreadable_errors() as e:
            skipped.append(unreadable_reason(f, e))
    if not pics:
        raise VanexportError(f"no readable images in '{images}' ({skipped[0]})",
                             "pass a folder of .jpg/.png images (subfolders are read)")
    backend = OnnxRuntimeBackend(onnx_path)

    def top1(pixels: list[np.ndarray]) -> np.ndarray:
        x = np.stack([normalize(p, pre) for p in pixels]).astype(np.float32)
        return run_batched(backend, x, 32).argmax(1)

    reference = top1([resize_and_crop(p, pre) for p in pics])
    out = {"images": len(pics), "skipped": skipped, "reference": f"resize {pre.resize_size} ({pre.interpolation}) + "
           f"centre crop {pre.input_size}, FP32 ONNX on ONNX Runtime CPU"}
    for mode in modes:
        out[mode] = float((top1([emulate(p, pre, mode) for p in pics]) == reference).mean())
    return out


# A group name or key as we write them; what a value may not hold: control characters and line breaks (a new
# line, a new key, a new group), a backslash (GLib's escape), '[' ']' (group syntax), ';' (GLib's list separator).
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_NOT_IN_A_VALUE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\\[\];]")


def key_file_value(value, what: str) -> str:
    """`value` as written after `key=` in a GLib key file (what nvinfer and nvdspreprocess load), or ValueError:
    an int, a finite float (repr, read back exactly), a list of those or of strings (joined by ';', GLib's list
    separator), or a string that stays one value on one line (no character of _NOT_IN_A_VALUE, no space at
    either end, since GLib strips it)."""
    if isinstance(value, (list, tuple)):
        return ";".join(key_file_value(v, what) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str) and value and value == value.strip() and not _NOT_IN_A_VALUE.search(value):
        return value
    raise ValueError(f"{what} {str(value)[:60]!r} cannot be one value of a DeepStream config (no line breaks, "
                     "control characters, '\\', '[', ']' or ';' inside a value)")


def key_file(comments: list[str], groups: dict[str, dict]) -> str:
    """A GLib key file: `# ` comment lines, then each group's `key=value` lines. Every comment is one line, every
    group name and key plain, every value passes key_file_value: no string can end a line, add a key or a group."""
    lines = [f"# {one_line(c, 'a comment')}" for c in comments]
    for group, keys in groups.items():
        lines += ["", f"[{_key(group)}]"] + [f"{_key(k)}={key_file_value(v, k)}" for k, v in keys.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def _key(name: str) -> str:
    if not _KEY.fullmatch(name):
        raise ValueError(f"{name!r} is not a key-file group name or key")
    return name


def preprocess_config(pre, roi, input_name: str, batch_size: int, gpu_id: int, target_gie: int, scale: float,
                      offsets: list[float], dtype: str = "float32") -> str:
    """nvdspreprocess config: one fixed ROI per source, cubic-scaled to the network input, normalised as
    nvinfer would, handed to the nvinfer whose gie-unique-id is `target_gie` as tensor `input_name`."""
    left, top, w, h = roi
    s = pre.input_size
    return key_file([
        f"nvdspreprocess config written by vanexport {__version__}: the part of each nvstreammux frame that VAN's",
        f"evaluation keeps (resize short side {pre.resize_size}, centre-crop {s}), scaled to {s}x{s} with the GPU's "
        "cubic filter. The ROI is in nvstreammux output pixels: for another width/height or more sources, rerun",
        "`vanexport deepstream --frame WxH` or add roi-params-src-<id> lines (left;top;width;height)."], {
        "property": {
            "enable": 1,
            "target-unique-ids": target_gie,
            "unique-id": PREPROCESS_UNIQUE_ID,
            "gpu-id": gpu_id,
            "process-on-frame": 1,
            "network-input-order": 0,  # NCHW
            "network-input-shape": [batch_size, 3, s, s],
            "processing-width": s,
            "processing-height": s,
            "maintain-aspect-ratio": 0,  # the ROI has the crop's shape already
            "symmetric-padding": 0,
            "network-color-format": 0,  # RGB, as VAN was trained
            "tensor-data-type": TENSOR_DATA_TYPE[dtype],  # the network input's type (7: FP16, an FP16-I/O file)
            "tensor-name": input_name,
            "scaling-buf-pool-size": 6,
            "tensor-buf-pool-size": 6,
            "scaling-pool-memory-type": 0,
            "scaling-pool-compute-hw": COMPUTE_GPU,  # the GPU, so that the cubic filter is one on a Jetson too
            "scaling-filter": SCALING_FILTER_CUBIC,
            "custom-lib-path": CUSTOM_LIB,
            "custom-tensor-preparation-function": "CustomTensorPreparation"},
        "user-configs": {"pixel-normalization-factor": scale, "offsets": list(offsets)},
        "group-0": {
            "src-ids": 0,
            "custom-input-transformation-function": "CustomAsyncTransformation",
            "process-on-roi": 1,
            "draw-roi": 0,  # nvdspreprocess draws each ROI's box unless told not to (its parser's default is 1)
            "roi-params-src-0": [left, top, w, h]}})


ROI_LABELS_PROBE = '''"""A pad probe for nvinfer's src pad: the label VAN gives each nvdspreprocess ROI, copied into an object meta of
its frame, where deepstream-app's OSD draws it and msgconv reads it. Written by vanexport {version}.

With nvdspreprocess and input-tensor-from-meta=1, nvinfer adds its classifier meta to the ROI meta only
(DeepStream 9.1 sources, gst-nvinfer/gstnvinfer_meta_utils.cpp, attach_metadata_classifier): no object meta has it.
This probe adds, for every ROI that nvinfer gie-unique-id={gie} labelled, one object meta covering the ROI, with
the label as its text and a classifier meta of its own. Needs pyds (NVIDIA-AI-IOT/deepstream_python_apps bindings
with GstNvDsPreProcessBatchMeta and NvDsRoiMeta.classifier_meta_list).

    import {module}
    {module}.attach(nvinfer)  # the nvinfer Gst element of your pipeline
"""
import pyds
from gi.repository import Gst

GIE_ID = {gie}  # gie-unique-id of the VAN classifier
UNTRACKED_OBJECT_ID = 0xFFFFFFFFFFFFFFFF  # nvdsmeta.h


def _items(glist, cast):
    while glist is not None:
        yield cast(glist.data)
        glist = glist.next


def best_label(roi):
    """(label, class id, probability) of the most probable attribute nvinfer GIE_ID gave this ROI, or None."""
    found = [(info.result_prob, info.result_label, info.result_class_id)
             for meta in _items(roi.classifier_meta_list, pyds.NvDsClassifierMeta.cast)
             if meta.unique_component_id == GIE_ID
             for info in _items(meta.label_info_list, pyds.NvDsLabelInfo.cast)]
    if not found:
        return None
    prob, label, class_id = max(found, key=lambda f: f[0])
    return label, class_id, prob


def add_object(batch_meta, roi, label, class_id, prob):
    obj = pyds.nvds_acquire_obj_meta_from_pool(batch_meta)
    obj.unique_component_id, obj.class_id, obj.confidence = GIE_ID, class_id, prob
    obj.object_id = UNTRACKED_OBJECT_ID
    obj.obj_label = label
    rect = obj.rect_params
    rect.left, rect.top, rect.width, rect.height = roi.roi.left, roi.roi.top, roi.roi.width, roi.roi.height
    rect.border_width = 0  # the label, not a box
    text = obj.text_params
    text.display_text = f"{{label}} {{prob:.2f}}"
    text.x_offset, text.y_offset = int(rect.left), max(0, int(rect.top) - 10)
    text.set_bg_clr = 1
    text.text_bg_clr.set(0.0, 0.0, 0.0, 1.0)
    text.font_params.font_name, text.font_params.font_size = "Serif", 11
    text.font_params.font_color.set(1.0, 1.0, 1.0, 1.0)
    classifier = pyds.nvds_acquire_classifier_meta_from_pool(batch_meta)
    classifier.unique_component_id = GIE_ID
    info = pyds.nvds_acquire_label_info_meta_from_pool(batch_meta)
    info.result_label, info.result_class_id, info.result_prob = label, class_id, prob
    pyds.nvds_add_label_info_meta_to_classifier(classifier, info)
    pyds.nvds_add_classifier_meta_to_object(obj, classifier)
    pyds.nvds_add_obj_meta_to_frame(roi.frame_meta, obj, None)


def roi_labels_to_objects(batch_meta) -> int:
    """Add an object meta for each labelled ROI of this batch; return how many."""
    added = 0
    for user_meta in _items(batch_meta.batch_user_meta_list, pyds.NvDsUserMeta.cast):
        if user_meta.base_meta.meta_type != pyds.NvDsMetaType.NVDS_PREPROCESS_BATCH_META:
            continue
        for roi in pyds.GstNvDsPreProcessBatchMeta.cast(user_meta.user_meta_data).roi_vector:
            found = best_label(roi)
            if found:
                add_object(batch_meta, roi, *found)
                added += 1
    return added


def probe(pad, info, user_data):
    batch_meta = pyds.gst_buffer_get_nvds_batch_meta(hash(info.get_buffer()))
    if batch_meta is not None:
        roi_labels_to_objects(batch_meta)
    return Gst.PadProbeReturn.OK


def attach(nvinfer):
    nvinfer.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe, None)
'''


def roi_labels_probe(gie_id: int, module: str) -> str:
    """The pad probe that moves each ROI's label into an object meta (see the module docstring). `module` (from
    the config's file name) goes into the script only when it is a Python identifier."""
    return ROI_LABELS_PROBE.format(version=__version__, gie=int(gie_id),
                                   module=module if module.isidentifier() else "roi_labels")


def deepstream_config(bundle: str | os.PathLike, output: str | os.PathLike, *, precision: str | None = None,
                      batch_size: int = 1, threshold: float = 0.0, gpu_id: int = 0, secondary: bool = False,
                      gie_id: int | None = None, operate_on_gie_id: int = 1, crop: bool | None = None,
                      frame: str = "1920x1080", images: str | os.PathLike | None = None, build_engine: bool = False,
                      target: str | None = None, progress: Callable[[str], None] | None = None) -> DeepStreamResult:
    """Write `output` (config_infer.txt), `<stem>_labels.txt`, the softmax ONNX and, with the crop,
    `<stem>_preprocess.txt` beside it; with `build_engine`, the TensorRT plan nvinfer is to load."""
    from ..device.bundle import open_bundle
    from .targets import resolve_target

    step = progress or (lambda msg: None)
    aim = resolve_target("deepstream", target)
    out = check_output_path(output)
    if batch_size < 1:
        raise VanexportError(f"--batch {batch_size} is not positive", "pass 1 or more")
    if gpu_id < 0:
        raise VanexportError(f"--gpu-id {gpu_id} is negative", "pass 0 or more (a CUDA device number)")
    if not 0.0 <= threshold <= 1.0:
        raise VanexportError(f"--threshold {threshold} is not a probability", "pass a value in 0..1")
    gie_id = gie_id if gie_id is not None else (2 if secondary else 1)
    if gie_id < 1 or operate_on_gie_id < 1:
        raise VanexportError("gie ids start at 1", "pass --gie-id / --operate-on-gie-id of 1 or more")
    if secondary and gie_id == operate_on_gie_id:
        raise VanexportError(f"--gie-id {gie_id} is the id of the primary detector this classifier operates on",
                             "give the classifier an id of its own (the default is 2)")
    if crop and secondary:
        raise VanexportError("the centre crop is for full frames: a secondary classifier gets each object scaled "
                             "whole by nvinfer", "drop --crop with --secondary")
    crop = not secondary if crop is None else crop
    mux = parse_frame(frame)
    if precision == "int8" and not build_engine:
        raise VanexportError("nvinfer cannot build INT8 from a Q/DQ ONNX: without an int8-calib-file it falls back "
                             "to FP16 and saves a '_fp16.engine' (so it rebuilds on every start)",
                             "add --build-engine to build and check the INT8 plan here (needs TensorRT), or use "
                             "--precision fp16")
    bundle_name = bundle_file_name(bundle)
    step(f"checking and unpacking {bundle_name}")
    b = open_bundle(bundle)
    facts = bundle_facts(b)
    warns: list[str] = []
    if precision is None:  # FP16 where the bundle has it: the usual DeepStream choice on Jetson and dGPU
        precision = "fp16" if "fp16" in b.precisions else "fp32"
    src = b.onnx(precision)
    dtype = _io_dtype(src, facts.input_name, facts.output_name, crop)
    shape = facts.input_shape  # None for a dynamic axis
    if isinstance(shape[0], int) and batch_size != shape[0]:
        raise VanexportError(f"the ONNX file has a static batch of {shape[0]}", f"pass --batch {shape[0]}")
    if not all(isinstance(d, int) for d in shape[1:]):
        raise VanexportError("the ONNX file has dynamic height/width; nvinfer needs fixed infer-dims",
                             "bundle a model exported without --dynamic-hw")
    pre = facts.pre
    scale, offsets = scale_and_offsets(pre.mean, pre.std)

    folder = out.parent if str(out.parent) else Path(".")
    onnx_path = folder / _onnx_name(src)
    labels_path = folder / f"{out.stem}_labels.txt"
    pre_path = folder / f"{out.stem}_preprocess.txt" if crop else None
    probe_path = folder / f"{out.stem}_roi_labels.py" if crop else None
    roi = list(centre_roi(*mux, pre)) if crop else None
    for path in (out, onnx_path, labels_path, pre_path, probe_path):
        if path is not None:
            _config_file_name(path.name)
            check_output_path(path)
    agreement = None
    if images is not None:
        step(f"measuring the preprocessing on {images} (FP32 ONNX, ONNX Runtime CPU)")
        agreement = measure_agreement(b.onnx("fp32"), images, pre)
        mode = "centre-crop" if crop else "stretch"
        agreement["config"] = mode
        warns += [f"{reason}; skipped" for reason in agreement["skipped"]]
        if agreement[mode] < 0.995:
            warns.append(f"this config's preprocessing ({mode}) agrees with the validated one on only "
                         f"{agreement[mode]:.1%} of {agreement['images']} images")

    engine_name = f"{onnx_path.name}_b{batch_size}_gpu{gpu_id}_{precision}.engine"  # what nvinfer saves
    props = {
        "gpu-id": gpu_id,
        "net-scale-factor": scale,
        "offsets": list(offsets),
        "model-color-format": 0,  # RGB, as VAN was trained
        "onnx-file": onnx_path.name,
        "model-engine-file": engine_name,
        "labelfile-path": labels_path.name,
        "batch-size": batch_size,
        "network-mode": NETWORK_MODE[precision],
        "network-type": 1,  # classifier
        "process-mode": 2 if secondary else 1,
        "infer-dims": list(shape[1:]),
        "network-input-order": 0,  # NCHW
        "output-blob-names": PROB_OUTPUT,
        "classifier-threshold": threshold,
        "maintain-aspect-ratio": 0,
        "scaling-filter": SCALING_FILTER_CUBIC,  # nvinfer's default is nearest; VAN was evaluated bicubic
        "scaling-compute-hw": COMPUTE_GPU,
        "gie-unique-id": gie_id,
    }
    if crop:
        props["input-tensor-from-meta"] = 1  # the tensor nvdspreprocess made from the ROI
    if secondary:
        # classifier-async-mode=1 skips objects without a tracker id: off, so it works without nvtracker
        props.update({"operate-on-gie-id": operate_on_gie_id, "classifier-async-mode": 0})

    # Everything is made in a folder beside the output and moved into place at the end: nothing half-written.
    work = temp_folder_beside(out)
    try:
        step(f"writing {onnx_path.name} (softmax appended)")
        softmax_onnx(src, work / onnx_path.name)
        engine = None
        if build_engine:
            engine = build_plan(b, work / onnx_path.name, precision, batch_size, gpu_id, step)
            props["model-engine-file"] = engine["plan"]
            warns += _target_warnings(engine, aim, precision)
        comments = [f"DeepStream Gst-nvinfer config for VAN-{facts.variant} ({precision.upper()}), written by "
                    f"vanexport {__version__}",
                    f"from {bundle_name}. nvinfer computes y = net-scale-factor * (x - offsets[c]) on 0..255 pixels;",
                    f"VAN wants (x/255 - mean)/std with mean={list(pre.mean)} std={list(pre.std)}: factor 1/(255*std), "
                    "offsets 255*mean.",
                    f"{onnx_path.name} is the bundle's {precision.upper()} ONNX file with a Softmax appended (output "
                    f"'{PROB_OUTPUT}')."]
        if engine:
            comments.append(f"model-engine-file is the plan vanexport built and checked here ({engine['check']}); "
                            "if this TensorRT cannot load it, nvinfer rebuilds from onnx-file.")
        else:
            comments.append("nvinfer builds model-engine-file from onnx-file on first run and saves it under that "
                            "name.")
        if crop:
            comments.append(f"Pipeline: nvstreammux (width={mux[0]} height={mux[1]}) ! nvdspreprocess "
                            f"config-file={pre_path.name} ! nvinfer config-file-path={out.name} input-tensor-meta=1")
            comments += [f"With input-tensor-from-meta=1 nvinfer puts the label in the ROI meta of {pre_path.name}'s "
                         "ROI only, not in an",
                         "object meta: deepstream-app's OSD and msgconv show nothing (DeepStream 9.1 sources, "
                         "gstnvinfer_meta_utils.cpp",
                         f"attach_metadata_classifier). {probe_path.name}: a pad probe for nvinfer's src pad that "
                         "copies it into an object meta."]
        else:
            comments.append("nvinfer scales each " + ("object" if secondary else "frame") + " whole to the network "
                            "input (a stretch, not VAN's resize + centre crop).")
        if secondary:
            comments.append(f"Secondary: classifies objects of the detector with gie-unique-id={operate_on_gie_id}; "
                            f"its own results carry gie-unique-id={gie_id}.")
        comments.append(f"classifier-threshold={threshold}: nvinfer reports the top-1 only when its probability is "
                        "above it (0: always).")
        try:  # every value was checked where it came in: a refusal here is a value that slipped past that
            config = key_file(comments, {"property": props})
            pre_config = pre_path and preprocess_config(pre, roi, facts.input_name, batch_size, gpu_id, gie_id,
                                                        scale, offsets, dtype)
        except ValueError as e:
            raise VanexportError(f"cannot write the DeepStream config: {e}", "nothing was written; this is a bug "
                                 "in vanexport, please report it") from None
        # nvinfer classifiers read one line per output layer, labels separated by ';' (each label is one line).
        (work / labels_path.name).write_text(";".join(label.replace(";", ",") for label in facts.labels) + "\n",
                                             encoding="utf-8")
        if pre_config:
            (work / pre_path.name).write_text(pre_config)
            (work / probe_path.name).write_text(roi_labels_probe(gie_id, probe_path.stem))
        (work / out.name).write_text(config)
        for made in sorted(work.iterdir(), key=lambda f: f.name == out.name):  # the config last
            os.replace(made, folder / made.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if engine:
        _point_manifest_at(folder / engine["plan"], onnx_path)
    return DeepStreamResult(str(out), str(labels_path), str(onnx_path), props["model-engine-file"], precision, scale,
                            offsets, props, "centre-crop" if crop else "stretch",
                            str(pre_path) if pre_path else None, roi, engine, agreement, warns,
                            str(probe_path) if probe_path else None, {"name": aim.name, "tensorrt": aim.tensorrt})


def _io_dtype(src: Path, input_name: str, output_name: str, crop: bool) -> str:
    """The network input's dtype, from the file itself, or a one-line refusal of what nvinfer cannot feed or read:
    an FP16 output (the classifier parser reads float32: ClassifyPostprocessor::parseAttributesFromSoftmaxLayers),
    an FP16 input without the crop (nvinfer's own preprocessing writes float32: InferPreprocessor::transform,
    nvdsinfer_context_impl.cpp; DeepStream 9.1). nvdspreprocess makes FP16 tensors (tensor-data-type=7)."""
    from ..formats.onnx_wire import io_dtypes

    inputs, outputs = io_dtypes(src)
    in_dtype, out_dtype = inputs.get(input_name, "float32"), outputs.get(output_name, "float32")
    fix = "bundle an FP16 file with FP32 inputs and outputs (vanexport fp16 without --fp16-io), or use --precision fp32"
    if out_dtype != "float32":
        raise VanexportError(f"{src.name} outputs {out_dtype}, but nvinfer's classifier reads float32 probabilities",
                             fix)
    if in_dtype not in TENSOR_DATA_TYPE or (in_dtype != "float32" and not crop):
        raise VanexportError(f"{src.name} takes {in_dtype} input, which nvinfer's own scaling cannot give (it "
                             "writes float32)", "use the crop (nvdspreprocess makes FP16 tensors), or " + fix)
    return in_dtype


def _target_warnings(engine: dict, aim, precision: str) -> list[str]:
    """A plan built here that the target DeepStream cannot load: what happens, what to do."""
    from .targets import plan_problem

    problem = plan_problem(engine["plan"], engine["tensorrt"], engine["version_compatible"], aim)
    if not problem:
        return []
    fallback = ("an INT8 Q/DQ file without a calibration table becomes FP16" if precision == "int8" else
                "it takes minutes on every start")
    return [f"{problem}: nvinfer will rebuild from onnx-file ({fallback}); run this command with --build-engine on "
            "the target (inside its container, or on the device), or pass --target if that is where you are"]


def _onnx_name(src: Path) -> str:
    """The softmax ONNX's name, from the bundled file's (a member name: no folder, but checked to be plain)."""
    try:
        return path_part(f"{src.stem}_softmax.onnx", "the name of the bundled ONNX file")
    except ValueError as e:
        raise VanexportError(f"refusing the bundle: {e}", REFUSED) from None


def _config_file_name(name: str) -> str:
    """A file written beside the config is named in it (labelfile-path, onnx-file, a comment): one plain value."""
    try:
        return key_file_value(name, "the file name")
    except ValueError as e:
        raise VanexportError(str(e), "choose an -o name of letters, digits, '_', '-' and '.'") from None


def _point_manifest_at(plan: Path, onnx_path: Path) -> None:
    """The plan was built from the softmax ONNX in the work folder: its manifest now names the ONNX's place."""
    from ..formats.engine_manifest import manifest_path, read_manifest, write_manifest

    m = read_manifest(plan)
    m.source_onnx.path = str(onnx_path)
    write_manifest(m, manifest_path(plan))


def build_plan(bundle, onnx_path: Path, precision: str, batch_size: int, gpu_id: int, step) -> dict:
    """Build the softmax ONNX into a plan on GPU `gpu_id` (batch 1..batch-size, as nvinfer runs it), check it on
    the bundle's check images against the softmax of the bundled ONNX outputs, and keep it beside the config."""
    from ..check.metrics import compare_logits
    from ..check.tolerances import engine_tolerance
    from ..device.classify import softmax
    from ..runtime.batching import batch_limits, run_batched
    from ..runtime.tensorrt_backend import TensorRTBackend
    from ..trt.build import build_engine
    from ..trt.settings import BuildSettings

    plan = onnx_path.with_name(f"{onnx_path.stem}_b{batch_size}_gpu{gpu_id}.plan")
    settings = BuildSettings(precision=precision, min_batch=1, opt_batch=batch_size, max_batch=batch_size)
    built = build_engine(onnx_path, settings, plan, timing_cache=None, validate=False, device=gpu_id, progress=step)
    step(f"checking {plan.name} against the bundled {precision.upper()} ONNX outputs")
    with TensorRTBackend(built.path, device=gpu_id) as backend:
        size, min_size = batch_limits(None, backend.profile)
        probs = run_batched(backend, bundle.check_inputs(), size, min_size)
    reference = softmax(bundle.expected_logits(precision))
    if probs.shape != reference.shape:
        raise VanexportError(f"the plan built here does not match the bundle (outputs {probs.shape}, expected "
                             f"{reference.shape}); nothing was written", "this is a bug in vanexport; please report it")
    c = compare_logits(probs, reference)
    tol = engine_tolerance(precision)
    # probabilities, not logits: held to the top-1 agreement of the precision (FP32: every image, and 1e-3)
    failures = []
    if c["top1_agree"] < (tol.min_top1_agree or 1.0):
        failures.append(f"top-1 agreement {c['top1_agree']:.2%}")
    if precision == "fp32" and c["max_abs_err"] > 1e-3:
        failures.append(f"max abs error {c['max_abs_err']:.2e} on probabilities")
    if failures:
        raise VanexportError(f"the plan built here does not match the bundle ({'; '.join(failures)}); nothing was "
                             "written", "use --precision fp16 or fp32, or leave the build to nvinfer (drop "
                             "--build-engine)")
    trt = built.manifest.get("tensorrt", {})
    return {"plan": plan.name, "manifest": Path(built.manifest_path).name, "precision": precision,
            "tensorrt": str(trt.get("version", "")), "version_compatible": bool(trt.get("version_compatible")),
            "check": f"top-1 {c['top1_agree']:.1%} on {c['n']} check images, max abs {c['max_abs_err']:.1e}",
            "overall": c}
