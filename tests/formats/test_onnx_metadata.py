"""The task a model file holds is data in its ONNX metadata: written, read back, and checked as outside input."""
import json

import pytest

from vanexport.errors import VanexportError
from vanexport.formats.onnx_metadata import ModelMetadata
from vanexport.model.tasks import SegmentationPreprocessing


def metadata(**kw):
    fields = dict(variant="b0", num_classes=150, input_name="input", output_name="logits",
                  input_shape=["batch", 3, 512, 512], dynamic_axes={}, preprocessing={"input_size": 512},
                  weights_sha256="ab" * 32, weights_source="fpn_van_b0.pth", weights_layout="mmseg", opset=17,
                  exporter="torchscript")
    return ModelMetadata(**{**fields, **kw})


def test_a_segmentation_model_records_its_task_head_and_preprocessing():
    meta = metadata(task="segment-fpn", head={"name": "semantic-fpn", "neck_channels": 256, "channels": 128},
                    preprocessing=SegmentationPreprocessing(input_size=512).to_dict())
    props = meta.to_props()
    assert props["task"] == "segment-fpn" and json.loads(props["head"])["channels"] == 128
    back = ModelMetadata.from_props(props)
    assert (back.task, back.head, back.img_size) == ("segment-fpn", meta.head, 512)
    pre = back.segmentation_preprocess
    # VAN-Segmentation's configs/_base_/datasets/ade20k.py: ImageNet statistics on the 0-255 scale, 512 short side
    assert pre.mean == (123.675, 116.28, 103.53) and pre.std == (58.395, 57.12, 57.375)
    assert (pre.short_side, pre.long_side_max, pre.size_divisor) == (512, 2048, 32)
    assert json.loads(props["preprocessing"])["scale"] == "0-255"


def test_files_from_before_tasks_are_classifiers():
    props = metadata(num_classes=1000, preprocessing={"input_size": 224, "crop_pct": 0.9, "interpolation": "bicubic",
                                                      "mean": [0.5] * 3, "std": [0.5] * 3}).to_props()
    del props["task"], props["head"]
    back = ModelMetadata.from_props(props)
    assert back.task == "classify" and back.head == {} and back.preprocess.mean == (0.5, 0.5, 0.5)


def test_a_classifier_step_given_a_segmentation_file_says_so_in_one_line():
    meta = metadata(task="segment-upernet", preprocessing=SegmentationPreprocessing().to_dict())
    with pytest.raises(VanexportError, match="holds UperNet") as e:
        meta.preprocess
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("field, value, message", [
    ("task", "segment-fpn\nrm -rf /", "unknown task"),
    ("task", "detect", "unknown task"),
    ("head", "[1, 2]", "'head' is not a record"),
])
def test_hostile_task_fields_are_refused(field, value, message):
    props = metadata(task="segment-fpn").to_props()
    props[field] = value
    with pytest.raises(VanexportError, match=message) as e:
        ModelMetadata.from_props(props)
    assert "\n" not in str(e.value)
