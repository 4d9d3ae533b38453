"""What an exported ONNX file says about itself (ONNX `metadata_props`), so later stages need no flags.

The record is plain Python; reading it from a file imports onnx (or, on a device without onnx, take the props from
an ONNX Runtime session: `ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map)`)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field

from ..errors import VanexportError
from ..files import regular_file
from ..model.tasks import HEAD_NAMES, SegmentationPreprocessing, check_task
from ..model.variants import Preprocessing
from . import fields
from .names import INT8_FORMS, PRECISIONS, model_stem


@dataclass
class ModelMetadata:
    variant: str
    num_classes: int
    input_name: str
    output_name: str
    input_shape: list  # ints, or axis names for dynamic axes
    dynamic_axes: dict
    preprocessing: dict
    weights_sha256: str
    weights_source: str
    weights_layout: str
    opset: int
    exporter: str
    precision: str = "fp32"
    vanexport_version: str = ""
    task: str = "classify"  # model.tasks.TASKS; files from before tasks existed are classifiers
    head: dict = field(default_factory=dict)  # a dense model's head: its kind, widths, output stride
    extra: dict = field(default_factory=dict)

    @property
    def img_size(self) -> int:
        return int(self.preprocessing["input_size"])

    @property
    def preprocess(self) -> Preprocessing:
        """The classifier's evaluation transform; a one-line error for the other tasks, which no command that reads
        it handles yet."""
        if self.task != "classify":
            raise VanexportError(f"this ONNX file holds {HEAD_NAMES[self.task]} (task {self.task}), and this step "
                                 "handles classifiers only so far", "see docs/segmentation.md for what works now")
        return Preprocessing.from_dict(self.preprocessing)

    @property
    def segmentation_preprocess(self) -> SegmentationPreprocessing:
        return SegmentationPreprocessing.from_dict(self.preprocessing)

    @property
    def dynamic_batch(self) -> bool:
        return not isinstance(self.input_shape[0], int)

    @property
    def dynamic_hw(self) -> bool:
        return not isinstance(self.input_shape[2], int)

    @property
    def static_batch(self) -> int | None:
        return None if self.dynamic_batch else int(self.input_shape[0])

    @property
    def int8_form(self) -> str | None:
        """Which INT8 file this is (names.INT8_FORMS): "cpu" when its metadata says so, "tensorrt" for every other
        INT8 file (those written before the CPU form existed say nothing); None for FP32 and FP16."""
        if self.precision != "int8":
            return None
        form = self.extra.get("int8_form", "tensorrt")
        if form not in INT8_FORMS:
            raise VanexportError(f"the ONNX file says its INT8 form is '{form[:40]}'",
                                 f"vanexport knows {', '.join(INT8_FORMS)}: quantize the FP32 file again")
        return form

    @property
    def stem(self) -> str:
        """van_b0_224, van_b0_224_bs4, van_b0_dynhw: what the file holds, without its precision."""
        return model_stem(self.variant, self.img_size, self.static_batch, self.dynamic_hw, self.task)

    def to_props(self) -> dict[str, str]:
        d = asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        return {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in d.items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> "ModelMetadata":
        known = set(cls.__dataclass_fields__) - {"extra"}
        missing = [k for k in ("variant", "preprocessing", "input_name") if k not in props]
        if missing:
            raise VanexportError("the ONNX file has no vanexport metadata (missing " + ", ".join(missing) + ")",
                                 "export it with `vanexport onnx`, or pass --variant to say what it is")
        values = {}
        try:
            for k in known:
                if k in props:
                    values[k] = props[k] if k in _STRING_FIELDS else _json(props[k], k)
            absent = [k for k, f in cls.__dataclass_fields__.items() if k not in values and k != "extra"
                      and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
            if absent:
                raise ValueError(f"it has no '{absent[0]}'")
            _check_values(values)
        except ValueError as e:
            raise VanexportError(f"the ONNX file's vanexport metadata: {e}",
                                 "export it again with `vanexport onnx`") from None
        extra = {k: v for k, v in props.items() if k not in known}
        return cls(**values, extra=extra)


def _json(text: str, key: str):
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(f"{key} is not JSON") from None


def _check_values(values: dict) -> None:
    """What each field of the metadata may hold (formats.fields): the file comes from outside like a bundle does."""
    fields.variant_name(values["variant"], "variant")
    fields.tensor_name(values["input_name"], "input_name")
    fields.tensor_name(values.get("output_name", "logits"), "output_name")
    if "num_classes" in values:
        fields.whole_number(values["num_classes"], "num_classes")
    task = values.get("task", "classify")
    check_task(task)  # outside input: it picks what later steps do
    if not isinstance(values.get("head", {}), dict):
        raise ValueError("'head' is not a record")
    if task == "classify":
        fields.preprocessing(values["preprocessing"], "preprocessing")
    else:
        fields.segmentation_preprocessing(values["preprocessing"], "preprocessing")
    if values.get("precision", "fp32") not in PRECISIONS:
        raise ValueError(f"precision {str(values['precision'])[:40]!r} is not one of {', '.join(PRECISIONS)}")
    shape = values.get("input_shape", [])
    if not isinstance(shape, list) or len(shape) != 4:
        raise ValueError("input_shape is not 4 axes (NCHW)")
    for i, axis in enumerate(shape):
        if isinstance(axis, str):
            fields.tensor_name(axis, f"input_shape[{i}]")
        else:
            fields.whole_number(axis, f"input_shape[{i}]", 1, 1 << 20)
    for key in ("weights_sha256", "weights_source", "weights_layout", "exporter", "vanexport_version"):
        if key in values:
            fields.one_line(values[key], key)


_STRING_FIELDS = {"variant", "input_name", "output_name", "weights_sha256", "weights_source", "weights_layout",
                  "exporter", "precision", "vanexport_version", "task"}


def write_metadata(model_proto, meta: ModelMetadata) -> None:
    """Replace the model's metadata_props with `meta` (sorted, so files are byte-identical across runs)."""
    del model_proto.metadata_props[:]
    for k, v in sorted(meta.to_props().items()):
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = k, v


def read_metadata(model_or_path) -> ModelMetadata:
    """The metadata of an ONNX model proto or file (a one-line VanexportError when the file is not ONNX)."""
    proto = model_or_path
    if not hasattr(model_or_path, "metadata_props"):
        proto = load_onnx(model_or_path, load_external_data=False)
    return ModelMetadata.from_props({p.key: p.value for p in proto.metadata_props})


def load_onnx(path, load_external_data: bool = True):
    """onnx.load, with a missing or unreadable file as a one-line VanexportError."""
    import onnx

    path = regular_file(path, "model file", "pass an .onnx file made by `vanexport onnx`")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as e:  # protobuf DecodeError and friends
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise VanexportError(f"'{path}' is not a readable ONNX file ({first})",
                             "export it again with `vanexport onnx`") from e
