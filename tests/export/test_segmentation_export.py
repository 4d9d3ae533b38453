"""`vanexport onnx` exports the model a segmentation checkpoint holds, with no flag saying what it is, records the task
in the ONNX metadata, and is checked here with ONNX Runtime against the PyTorch model."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vanexport.cli import cli
from vanexport.formats.onnx_metadata import read_metadata
from vanexport.model.segmentation import load_dense_model


@pytest.fixture(scope="module")
def fpn_checkpoint(tmp_path_factory):
    """A Semantic FPN on VAN-b0 with random weights (seed 0), saved the way the authors' mmseg saves it."""
    model, _, _, _ = load_dense_model("b0", None, task="segment-fpn")
    path = tmp_path_factory.mktemp("seg") / "fpn_van_b0.pth"
    torch.save({"meta": {"CLASSES": [f"c{i}" for i in range(150)]}, "state_dict": model.state_dict()}, path)
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def onnx_logits(path, x):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def agreement(ours, ref):
    return float((ours.argmax(1) == ref.argmax(1)).mean())


def test_onnx_exports_the_checkpoints_semantic_fpn_with_no_flag(fpn_checkpoint, tmp_path):
    out = tmp_path / "fpn.onnx"
    r = run("onnx", "--weights", fpn_checkpoint, "--img-size", 64, "-o", out, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["validation"]["passed"]
    meta = read_metadata(out)
    assert (meta.task, meta.num_classes, meta.weights_layout) == ("segment-fpn", 150, "mmseg")
    assert meta.head == {"name": "semantic-fpn", "neck_channels": 256, "channels": 128, "output_stride": 4}
    pre = meta.segmentation_preprocess
    assert pre.mean == (123.675, 116.28, 103.53) and pre.std == (58.395, 57.12, 57.375)
    assert meta.preprocessing["scale"] == "0-255"

    model, _, _, _ = load_dense_model(None, str(fpn_checkpoint))
    x = np.random.default_rng(1).uniform(-2, 2.5, (2, 3, 64, 64)).astype(np.float32)
    ours = onnx_logits(out, x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert ours.shape == ref.shape == (2, 150, 16, 16)
    assert np.abs(ours - ref).max() < 1e-5 * np.abs(ref).max() + 1e-4 and agreement(ours, ref) >= 0.999  # float32


def test_a_dynamic_hw_export_follows_the_input_size(fpn_checkpoint, tmp_path):
    out = tmp_path / "fpn_dyn.onnx"
    r = run("onnx", "--weights", fpn_checkpoint, "--img-size", 64, "--dynamic-hw", "-o", out)
    assert r.exit_code == 0, r.output
    model, _, _, _ = load_dense_model(None, str(fpn_checkpoint))
    x = np.random.default_rng(2).uniform(-2, 2.5, (1, 3, 96, 128)).astype(np.float32)
    ours = onnx_logits(out, x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert ours.shape == (1, 150, 24, 32)
    import onnxruntime as ort

    declared = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_outputs()[0].shape
    assert declared == ["batch", 150, "out_height", "out_width"]
    assert np.abs(ours - ref).max() < 1e-5 * np.abs(ref).max() + 1e-4 and agreement(ours, ref) >= 0.999  # float32


def test_upernet_exports_at_a_size_its_pool_scales_do_not_divide(tmp_path):
    """At 64x64 the last stage is 2x2: pool scales 3 and 6 do not divide it (nor 16, at the authors' 512)."""
    model, _, _, _ = load_dense_model("b0", None, task="segment-upernet")
    ckpt = tmp_path / "upernet_van_b0.pth"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    out = tmp_path / "upernet.onnx"
    r = run("onnx", "--weights", ckpt, "--img-size", 64, "--batch", 1, "-o", out)
    assert r.exit_code == 0, r.output
    assert read_metadata(out).head["pool_scales"] == [1, 2, 3, 6]
    x = np.random.default_rng(3).uniform(-2, 2.5, (1, 3, 64, 64)).astype(np.float32)
    ours = onnx_logits(out, x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(ours - ref).max() < 1e-5 * np.abs(ref).max() + 1e-4 and agreement(ours, ref) >= 0.999  # float32
    r = run("onnx", "--weights", ckpt, "--img-size", 64, "--dynamic-hw", "-o", tmp_path / "dyn.onnx")
    assert r.exit_code == 2 and "UperNet exports at a fixed size only" in r.stderr


def test_the_default_name_says_what_the_file_holds(fpn_checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("onnx", "--weights", fpn_checkpoint, "--img-size", 64, "--no-validate", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["path"].endswith("fpn_van_b0_64.onnx")


@pytest.mark.parametrize("args, message", [
    (["--task", "segment-upernet"], "holds Semantic FPN"),
    (["--task", "features"], "exporting backbone features (four outputs) is not supported yet"),
    (["--fold"], "--fold is for classifiers"),
    (["--num-classes", "10"], "--num-classes 10 but the checkpoint's head has 150 classes"),
])
def test_what_cannot_be_exported_is_a_one_line_error(fpn_checkpoint, tmp_path, args, message):
    out = tmp_path / "x.onnx"
    r = run("onnx", "--weights", fpn_checkpoint, "--img-size", 64, "-o", out, *args)
    assert r.exit_code == 2 and message in r.stderr and not out.exists()
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in r.stderr  # progress lines aside
