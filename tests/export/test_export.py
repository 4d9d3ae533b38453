import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from vanexport.errors import ValidationFailed, VanexportError
from vanexport.formats.onnx_metadata import read_metadata
from vanexport.export.onnx import default_output_path, export_onnx
from vanexport.model.factory import load_model
from vanexport.check.validate import validate


def _ort_vs_torch(path, model, batch, size, seed=0):
    x = np.random.default_rng(seed).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    return float(np.abs(out - ref).max())


@pytest.fixture
def b0_dynamic(b0_onnx_224):
    return b0_onnx_224


@pytest.mark.parametrize("variant", ["b0", pytest.param("b1", marks=pytest.mark.slow)])
def test_export_matches_pytorch_at_batch_1_and_3(variant, tmp_path, b0_onnx_224):
    if variant == "b0":
        result, path = b0_onnx_224
    else:
        path = tmp_path / f"{variant}.onnx"
        result = export_onnx(variant, output=path)
    assert result.validation["passed"] and result.simplified
    model, _, _ = load_model(variant, None, quiet=True)
    for batch in (1, 3):
        assert _ort_vs_torch(path, model, batch, 224) <= 1e-4
    # the validation report covers both batch sizes and real photos
    groups = [g["group"] for g in result.validation["groups"]]
    assert groups == ["random b1 224x224", "random b3 224x224", "photos 224x224"]


@pytest.mark.slow
def test_dynamic_hw_export_runs_at_other_resolutions(tmp_path):
    path = tmp_path / "dyn.onnx"
    result = export_onnx("b0", img_size=192, dynamic_hw=True, output=path)
    assert result.input_shape == ["batch", 3, "height", "width"]
    model, _, _ = load_model("b0", None, quiet=True)
    for size in (128, 192, 288):
        assert _ort_vs_torch(path, model, 2, size) <= 1e-4
    assert {g["group"] for g in result.validation["groups"]} >= {"random b3 128x128", "random b1 224x224"}


def test_static_batch_and_non_224_size(tmp_path):
    path = tmp_path / "static.onnx"
    result = export_onnx("b0", img_size=160, batch=4, output=path)
    shape = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert shape == [4, 3, 160, 160] and result.input_shape == [4, 3, 160, 160]
    model, _, _ = load_model("b0", None, quiet=True)
    assert _ort_vs_torch(path, model, 4, 160) <= 1e-4


def test_metadata_says_what_the_file_is(b0_dynamic):
    result, path = b0_dynamic
    meta = read_metadata(path)
    assert (meta.variant, meta.num_classes, meta.opset, meta.precision) == ("b0", 1000, 17, "fp32")
    assert meta.input_shape == ["batch", 3, 224, 224] and meta.dynamic_axes == {"input": {"0": "batch"}}
    assert meta.preprocessing["mean"] == [0.5, 0.5, 0.5] and meta.preprocessing["resize_size"] == 248
    assert meta.weights_sha256 == result.weights["sha256"] and meta.weights_source == "random(seed=0)"
    assert meta.vanexport_version and meta.exporter == "torchscript"


def test_graph_form_opset17_layernorm_single_op(b0_dynamic):
    _, path = b0_dynamic
    ops = collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    assert ops["LayerNormalization"] == 4  # one op per stage: TensorRT's normalisation layer
    assert ops["Conv"] == 108 and ops["Erf"] == 26  # 26 exact GELUs
    assert ops["Reshape"] == 0  # the NHWC LayerNorm form needs no H/W-dependent reshape


def test_export_is_byte_identical_when_repeated(b0_dynamic, tmp_path):
    first, path = b0_dynamic
    second = export_onnx("b0", output=tmp_path / "again.onnx", validate=False)
    assert (tmp_path / "again.onnx").read_bytes() == path.read_bytes()
    assert second.sha256 == first.sha256


def test_simplify_failure_falls_back_with_a_warning(tmp_path, monkeypatch):
    import onnxsim

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(onnxsim, "simplify", broken)
    result = export_onnx("b0", img_size=64, output=tmp_path / "m.onnx")
    assert not result.simplified and "onnxsim failed (boom)" in result.simplify_note
    assert any("keeping the unsimplified graph" in w for w in result.warnings)
    assert result.validation["passed"]


def test_simplify_that_changes_outputs_is_rejected(tmp_path, monkeypatch):
    import onnxsim

    real = onnxsim.simplify

    def corrupting(model, **k):
        simplified, ok = real(model, **k)
        for init in simplified.graph.initializer:
            if init.name.endswith("head.bias") or "head" in init.name:
                arr = onnx.numpy_helper.to_array(init) + 1.0
                init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
        return simplified, ok

    monkeypatch.setattr(onnxsim, "simplify", corrupting)
    result = export_onnx("b0", img_size=64, output=tmp_path / "m.onnx")
    assert not result.simplified and "changed the outputs" in result.simplify_note


def test_validate_catches_a_tampered_file(b0_dynamic, tmp_path):
    _, path = b0_dynamic
    proto = onnx.load(str(path))
    for init in proto.graph.initializer:  # nudge one BatchNorm's statistics: small, but not below tolerance
        if "running_var" in init.name or init.name.endswith("norm1.running_var"):
            arr = onnx.numpy_helper.to_array(init) * 1.01
            init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
            break
    else:  # BatchNorm folded into Conv by onnxsim: nudge a conv weight instead
        init = next(i for i in proto.graph.initializer if len(i.dims) == 4)
        arr = onnx.numpy_helper.to_array(init) * 1.01
        init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    report = validate(bad)
    assert not report.passed and not report.polygraphy_passed
    assert "max abs error" in report.failures[0]
    assert validate(path).passed
    assert validate(bad, atol=10.0).passed


def test_validate_with_an_image_folder_and_weights(b0, tmp_path):
    from PIL import Image

    _, sd = b0
    ckpt = tmp_path / "w.pth"
    torch.save({"state_dict": sd}, ckpt)
    path = tmp_path / "m.onnx"
    export_onnx("b0", str(ckpt), output=path, validate=False)
    folder = tmp_path / "imgs" / "cat"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    report = validate(path, weights=str(ckpt), images=str(tmp_path / "imgs"))
    assert report.passed and report.groups[0]["n"] == 3 and "3 images" in report.groups[0]["group"]
    other = {k: v.clone() for k, v in sd.items()}
    other["head.bias"] += 1
    torch.save(other, tmp_path / "other.pth")
    with pytest.raises(VanexportError, match="not the weights this model was exported from"):
        validate(path, weights=str(tmp_path / "other.pth"))


def test_failed_validation_writes_nothing(tmp_path, monkeypatch):
    from vanexport.check import tolerances as v

    monkeypatch.setitem(v.TOLERANCES, "fp32", v.Tolerance("fp32", atol=0.0, rtol=0.0))
    out = tmp_path / "m.onnx"
    with pytest.raises(ValidationFailed, match="nothing was written"):
        export_onnx("b0", img_size=64, output=out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, match", [
    ({"opset": 13}, "opset 13 is not supported"),
    ({"img_size": 230}, "not a multiple of 32"),
    ({"variant": "b7"}, "unknown VAN variant"),
    ({"batch": 0}, "not positive"),
    ({"exporter": "jit"}, "unknown exporter"),
])
def test_bad_arguments(kwargs, match, tmp_path):
    args = {"variant": "b0", **kwargs}
    with pytest.raises(VanexportError, match=match):
        export_onnx(output=tmp_path / "m.onnx", **args)
    assert list(tmp_path.iterdir()) == []


def test_output_folder_problems(tmp_path, monkeypatch):
    with pytest.raises(VanexportError, match="does not exist"):
        export_onnx("b0", output=tmp_path / "missing" / "m.onnx")
    with pytest.raises(VanexportError, match="is a folder"):
        export_onnx("b0", output=tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    import vanexport.files as files

    real_access = files.os.access  # root may write anywhere: make the check see what a user would
    monkeypatch.setattr(files.os, "access", lambda p, mode: False if str(p) == str(ro) else real_access(p, mode))
    with pytest.raises(VanexportError, match="not writable"):
        export_onnx("b0", output=ro / "m.onnx")
    assert list(ro.iterdir()) == []


def test_default_output_names():
    assert str(default_output_path("b0", 224, None, False)) == "engines/van_b0_224.onnx"
    assert str(default_output_path("b2", 256, 8, False)) == "engines/van_b2_256_bs8.onnx"
    assert str(default_output_path("b0", 224, None, True, "fp16")) == "engines/van_b0_dynhw_fp16.onnx"


def test_every_gelu_stays_fusable(b0_onnx_64, tmp_path):
    """onnxsim must not fold the MLP GELU's '* 0.5' into fc2: ONNX Runtime then fuses all 26 of b0's GELUs (the
    level before its hardware-specific layouts, so the saved graph is the same on every CPU)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(b0_onnx_64), opts, providers=["CPUExecutionProvider"])
    ops = collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node)
    assert ops["Gelu"] == 26 and ops["Erf"] == 0


@pytest.mark.slow
def test_an_exporter_that_writes_another_opset_is_refused(tmp_path):
    """torch's dynamo exporter cannot convert VAN down to opset 17 and keeps 18: the file would carry a false opset in
    its metadata (and its Erf GELU pattern is not fused by ONNX Runtime). Refused, nothing written."""
    out = tmp_path / "dynamo.onnx"
    with pytest.raises(VanexportError, match="the dynamo exporter writes opset 18 or newer, not 17: pass --opset 18"):
        export_onnx("b0", img_size=64, exporter="dynamo", opset=17, output=out, validate=False)
    assert not out.exists() and not list(tmp_path.iterdir())
