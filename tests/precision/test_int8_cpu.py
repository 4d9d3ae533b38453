"""The INT8 file made for the CPU (NNCF, run by OpenVINO): the INT8 gates on the trained digits VAN, checked again
here by running OpenVINO and PyTorch directly, and the metadata that tells later commands what the file is."""
import json
import sys

import numpy as np
import pytest

from image_folders import class_subset
from vanexport.errors import ValidationFailed, VanexportError
from vanexport.files import sha256_file
from vanexport.formats.onnx_metadata import ModelMetadata, read_metadata

pytest.importorskip("nncf")
pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def cpu_int8(digits, tmp_path_factory):
    from vanexport.precision.int8_cpu import quantize_int8_cpu

    out = tmp_path_factory.mktemp("int8cpu") / "van_digits_int8_cpu.onnx"
    return quantize_int8_cpu(digits.onnx, digits.calib_dir, out, num_calib=64, images=digits.heldout_dir)


def test_cpu_int8_passes_the_int8_gates_on_held_out_digits(cpu_int8, digits):
    v = cpu_int8.validation
    assert v["passed"] and v["precision"] == "int8" and v["runtime"].startswith("OpenVINO")
    assert v["overall"]["n"] == 400
    # the verdict again, from OpenVINO and PyTorch run here, independently of check.compare
    import openvino as ov
    import torch

    from vanexport.data.images import label_indices, load_folder
    from vanexport.model.factory import load_model

    meta = read_metadata(digits.onnx)
    data = load_folder(digits.heldout_dir, meta.preprocess)
    labels = label_indices(data.labels, 10)
    compiled = ov.Core().compile_model(cpu_int8.path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ours = np.concatenate([compiled(data.array[i:i + 8])[0] for i in range(0, len(data.array), 8)])
    model, _, _ = load_model("b0", digits.weights, 10, quiet=True)
    with torch.no_grad():
        ref = model(torch.from_numpy(data.array)).numpy()
    agree = float((ours.argmax(1) == ref.argmax(1)).mean())
    drop = 100 * float((ref.argmax(1) == labels).mean() - (ours.argmax(1) == labels).mean())
    assert agree >= 0.97 and drop <= 1.0
    assert agree == pytest.approx(v["overall"]["top1_agree"], abs=1 / 400)  # one near-tie may differ by batching
    assert cpu_int8.converted_nodes > 100  # VAN-b0's 109 Conv/Gemm take INT8 weights (a few may stay FP32)


def test_openvino_runs_it_in_int8(cpu_int8):
    from vanexport.runtime.openvino_backend import OpenVinoBackend

    backend = OpenVinoBackend(cpu_int8.path, precision="int8")
    assert backend.precision == "int8"
    assert backend.layer_precisions["i8"] + backend.layer_precisions["u8"] > backend.layer_precisions["f32"]


def test_the_file_says_what_it_is(cpu_int8, digits):
    from vanexport.data.calibration import open_calibration

    meta = read_metadata(cpu_int8.path)
    assert meta.precision == "int8" and meta.int8_form == "cpu"
    assert meta.extra["source_sha256"] == sha256_file(digits.onnx) == cpu_int8.source_sha256
    settings = json.loads(meta.extra["precision_settings"])
    assert settings["calibration_sha256"] == open_calibration(digits.calib_dir).sha256
    assert settings["method"] == "nncf" and settings["runtime"] == "openvino" and settings["num_calib"] == 64
    assert ModelMetadata.from_props(meta.to_props()).int8_form == "cpu"  # survives a round trip through props
    assert meta.num_classes == 10 and meta.preprocessing == read_metadata(digits.onnx).preprocessing


def test_a_failing_gate_writes_nothing(digits, tmp_path, monkeypatch):
    import dataclasses

    from vanexport.check import tolerances
    from vanexport.precision.int8_cpu import quantize_int8_cpu

    strict = dataclasses.replace(tolerances.TOLERANCES["int8"], min_top1_agree=1.01)  # no file can pass
    monkeypatch.setitem(tolerances.TOLERANCES, "int8", strict)
    small = class_subset(digits.heldout_dir, tmp_path / "heldout", 2)
    out = tmp_path / "m_int8_cpu.onnx"
    with pytest.raises(ValidationFailed, match="top-1 agreement"):
        quantize_int8_cpu(digits.onnx, digits.calib_dir, out, num_calib=16, images=small)
    assert list(tmp_path.glob("m_int8_cpu*")) == []


def test_int8_form_is_read_from_the_metadata_and_checked():
    base = dict(variant="b0", num_classes=10, input_name="input", output_name="logits", input_shape=["batch", 3, 64, 64],
                dynamic_axes={}, preprocessing={"input_size": 64}, weights_sha256="0", weights_source="x",
                weights_layout="timm", opset=17, exporter="torchscript")
    assert ModelMetadata(**base, precision="int8").int8_form == "tensorrt"  # files from before the CPU form
    assert ModelMetadata(**base, precision="fp32", extra={"int8_form": "cpu"}).int8_form is None
    assert ModelMetadata(**base, precision="int8", extra={"int8_form": "cpu"}).int8_form == "cpu"
    with pytest.raises(VanexportError, match="INT8 form is 'gpu"):
        ModelMetadata(**base, precision="int8", extra={"int8_form": "gpu\nwhatever"}).int8_form  # noqa: B018


def test_without_nncf_one_line_error(monkeypatch):
    from vanexport.precision.int8_cpu import import_nncf

    monkeypatch.setitem(sys.modules, "nncf", None)
    with pytest.raises(VanexportError, match="NNCF is not installed") as e:
        import_nncf()
    assert "cpu-int8" in e.value.hint


def test_quantize_for_cpu_refuses_a_method_and_needs_images(tmp_path):
    from click.testing import CliRunner

    from vanexport.cli import cli

    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read: the flags are checked first")
    r = CliRunner().invoke(cli, ["quantize", str(model), "--for", "cpu", "--method", "max", "--calib", str(tmp_path)])
    assert r.exit_code == 2 and "--method cannot be used with --for cpu" in r.output
    r = CliRunner().invoke(cli, ["quantize", str(model), "--for", "cpu"])
    assert r.exit_code == 2 and "INT8 needs calibration images" in r.output
    r = CliRunner().invoke(cli, ["quantize", str(model), "--precision", "fp16", "--for", "cpu"])
    assert r.exit_code == 2 and "--for cannot be used with --precision fp16" in r.output
