"""FP16 and INT8 conversion of a trained VAN (scikit-learn digits), measured on held-out images."""
import collections
import json
import shutil

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, numpy_helper

from vanexport.cli import cli
from vanexport.errors import VanexportError
from vanexport.formats.onnx_metadata import read_metadata
from vanexport.formats.names import converted_path as default_output
from vanexport.precision.fp16 import convert_fp16
from vanexport.precision.int8 import quantize_int8
from vanexport.files import sha256_file
from vanexport.check.validate import validate
from image_folders import class_subset
from modules import benchmark


@pytest.fixture(scope="module")
def small(digits, tmp_path_factory):
    """Class-balanced subsets for the tests that only need a few images: 40 calib, 100 held-out."""
    root = tmp_path_factory.mktemp("small")
    return {"calib": class_subset(digits.calib_dir, root / "calib", 4), "heldout": class_subset(digits.heldout_dir, root / "heldout", 10)}


@pytest.fixture(scope="module")
def int8(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "van_b0_64_int8.onnx"
    return quantize_int8(digits.onnx, digits.calib_dir, out, images=digits.heldout_dir)


@pytest.fixture(scope="module")
def fp16(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp16") / "van_b0_64_fp16.onnx"
    return convert_fp16(digits.onnx, out, keep_fp32=["/head/"], images=digits.heldout_dir)


def _producers(model):
    return {o: n for n in model.graph.node for o in n.output}


def _inits(model):
    return {i.name: i for i in model.graph.initializer}


def test_int8_qdq_structure_is_what_tensorrt_accepts(int8, digits):
    model = onnx.load(int8.path)
    inits, producers = _inits(model), _producers(model)
    ops = collections.Counter(n.op_type for n in model.graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > ops["QuantizeLinear"]
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = numpy_helper.to_array(inits[n.input[2]])
            assert zp.dtype == np.int8 and not zp.any(), n.name  # symmetric: zero points 0
        if n.op_type == "DequantizeLinear":
            assert inits.get(n.input[0]) is None or inits[n.input[0]].data_type == TensorProto.INT8, \
                f"{n.name} dequantizes a non-INT8 tensor (INT32 bias?)"
    weighted = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(weighted) == 109 and int8.converted_nodes == 109
    for n in weighted:
        dq = producers[n.input[1]]  # every weight, also the ones onnxsim emitted as Constant nodes
        assert dq.op_type == "DequantizeLinear" and dq.input[0] in inits, n.name
        scale = numpy_helper.to_array(inits[dq.input[1]])
        axis = {a.name: a.i for a in dq.attribute}.get("axis", 1)
        assert axis == 0 and scale.shape == (inits[dq.input[0]].dims[0],), n.name  # per output channel
        assert producers[n.input[0]].op_type == "DequantizeLinear", n.name  # activation quantized too
        if len(n.input) > 2:
            assert n.input[2] in inits and inits[n.input[2]].data_type == TensorProto.FLOAT  # bias stays FP32
    meta = read_metadata(int8.path)
    assert meta.precision == "int8" and meta.extra["source_sha256"] == sha256_file(digits.onnx)
    assert meta.num_classes == 10 and meta.preprocessing == read_metadata(digits.onnx).preprocessing
    assert int8.source_sha256 == meta.extra["source_sha256"] and int8.sha256 == sha256_file(int8.path)
    assert default_output("engines/van_b0_224.onnx", "int8").as_posix() == "engines/van_b0_224_int8.onnx"


def test_int8_meets_its_thresholds_on_held_out_images(int8, digits):
    v = int8.validation
    assert v["precision"] == "int8" and v["passed"], v["failures"]
    assert v["overall"]["n"] == 400 and v["overall"]["top1_agree"] >= 0.97
    assert v["accuracy"]["n"] == 400 and v["accuracy"]["drop_points"] <= 1.0
    assert v["overall"]["max_abs_err"] > 1e-4  # it really is quantized: FP32's verdict would fail it
    assert digits.heldout_accuracy > 0.9  # a trained model (random guessing is 0.1) ...
    assert abs(v["accuracy"]["reference"] - digits.heldout_accuracy) < 1e-6  # ... seeing the PNGs as in training
    assert int8.calibration["images"] == 256 and not int8.calibration["cache_hit"]


def test_validate_reads_the_precision_from_the_file(int8, small):
    r = CliRunner().invoke(cli, ["validate", int8.path, "--images", small["heldout"], "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["precision"] == "int8" and report["accuracy"]["n"] == 100
    assert report["tolerance"]["min_top1_agree"] == 0.97 and report["tolerance"]["max_accuracy_drop"] == 1.0
    r = CliRunner().invoke(cli, ["validate", int8.path, "--images", small["heldout"], "--atol", "1e-4"])
    assert r.exit_code == 1 and "max abs error" in r.stdout  # an explicit atol is enforced


def test_fp16_keeps_layernorm_and_asked_nodes_in_fp32(fp16, digits):
    model = onnx.load(fp16.path)
    producers, inits = _producers(model), _inits(model)
    assert [i.type.tensor_type.elem_type for i in (*model.graph.input, *model.graph.output)] == [TensorProto.FLOAT] * 2
    kept = [n for n in model.graph.node if n.op_type in ("LayerNormalization", "Gemm")]
    assert len(kept) == 5 and sorted(fp16.kept_fp32) == sorted(n.name for n in kept)
    for n in kept:
        cast = producers[n.input[0]]
        assert cast.op_type == "Cast" and cast.attribute[0].i == TensorProto.FLOAT, n.name
        assert all(inits[i].data_type == TensorProto.FLOAT for i in n.input[1:] if i in inits)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert all(inits[n.input[1]].data_type == TensorProto.FLOAT16 for n in convs if n.input[1] in inits)
    seen = {i.name for i in (*model.graph.input, *model.graph.initializer)} | {""}
    for n in model.graph.node:  # topologically sorted: TensorRT's parser reads nodes in order
        assert all(i in seen for i in n.input), n.name
        seen.update(n.output)
    assert read_metadata(fp16.path).precision == "fp16"
    v = fp16.validation
    assert v["passed"] and v["overall"]["top1_agree"] >= 0.995 and v["overall"]["min_cosine"] >= 0.9999


def test_fp16_layernorm_can_be_converted_when_asked(digits, tmp_path):
    result = convert_fp16(digits.onnx, tmp_path / "m.onnx", layernorm_fp16=True)
    model = onnx.load(result.path)
    producers = _producers(model)
    ln = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    assert ln and all(producers[n.input[0]].op_type != "Cast" for n in ln) and result.kept_fp32 == []
    # checked without being asked, on random batches and the sample photos, and reported under its own name
    v = result.validation
    assert v["passed"] and v["model"] == result.path and [g["group"] for g in v["groups"]][-1] == "photos 64x64"


def test_calibration_cache_is_reused(digits, small, tmp_path, monkeypatch):
    out = tmp_path / "m_int8.onnx"
    first = quantize_int8(digits.onnx, small["calib"], out, num_calib=32, method="max")
    assert not first.calibration["cache_hit"] and first.calibration["images"] == 32
    cache = first.calibration["cache"]
    import vanexport.data.calibration as calibration

    def no_images(*a, **k):
        raise AssertionError("calibration ran again")

    monkeypatch.setattr(calibration, "load_calibration", no_images)
    second = quantize_int8(digits.onnx, small["calib"], out, num_calib=32, method="max")
    assert second.calibration["cache_hit"] and second.calibration["cache"] == cache
    assert second.sha256 == first.sha256 and second.calibration["images"] == 32
    monkeypatch.undo()
    # another image set (one more file) is another key: calibration runs again
    extra = tmp_path / "calib"
    shutil.copytree(small["calib"], extra)
    shutil.copy(next(extra.rglob("*.png")), extra / "0" / "copy.png")
    third = quantize_int8(digits.onnx, extra, out, num_calib=32, method="max")
    assert not third.calibration["cache_hit"] and third.calibration["cache"] != cache
    # checking INT8 on its own calibration images flatters it: validate says so
    assert any("these are the calibration images" in n for n in validate(third.path, images=extra).notes)


def test_corrupt_images_are_skipped_and_counted(digits, small, tmp_path):
    folder = tmp_path / "calib"
    shutil.copytree(small["calib"], folder)
    good = sorted(folder.rglob("*.png"))
    (folder / "3" / "junk.png").write_bytes(b"not a png")
    (folder / "5" / "truncated.png").write_bytes(good[0].read_bytes()[:60])
    (folder / "empty.jpg").write_bytes(b"")
    result = quantize_int8(digits.onnx, folder, tmp_path / "m.onnx", num_calib=len(good), method="max")
    assert result.calibration["skipped"] == 3 and result.calibration["images"] == len(good)
    assert {p.split("/")[-1] for p in result.calibration["skipped_files"]} == {"junk.png", "truncated.png", "empty.jpg"}
    assert any("3 unreadable" in w for w in result.warnings)


@pytest.mark.usefixtures("small_entropy_histograms")  # the image counts are checked, not the ranges
def test_too_few_images_is_a_clear_error_and_writes_nothing(digits, tmp_path):
    folder = class_subset(digits.calib_dir, tmp_path / "calib", 2)
    (folder / "junk.png").write_bytes(b"junk")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VanexportError, match=r"only 20 usable images .* \(1 unreadable\), fewer than --num-calib 64"):
        quantize_int8(digits.onnx, folder, out / "m.onnx", num_calib=64)
    assert list(out.iterdir()) == []
    r = CliRunner().invoke(cli, ["quantize", digits.onnx, "--int8", "--calib", str(folder), "--num-calib", "64",
                                 "-o", str(out / "m.onnx")])
    assert r.exit_code == 2 and r.stderr.strip().splitlines()[-1].startswith("error: only 20 usable images")
    assert "omit --num-calib to calibrate on all 20" in r.stderr and list(out.iterdir()) == []
    # without --num-calib the 20 images there are calibrate, with a warning (and the check on held-out images)
    r = CliRunner().invoke(cli, ["quantize", digits.onnx, "--int8", "--calib", str(folder), "--images",
                                 str(folder), "-o", str(out / "m.onnx"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["calibration"]["images"] == 20 and "calibrating on only 20 inputs" in r.stderr
    with pytest.raises(VanexportError, match="calibration data .* not found"):
        quantize_int8(digits.onnx, tmp_path / "nowhere", out / "m.onnx")


def test_npz_calibration_gives_the_same_ranges_as_the_folder(digits, tmp_path):
    from vanexport.data.images import load_folder

    images = load_folder(digits.calib_dir, read_metadata(digits.onnx).preprocess, limit=32, shuffle_seed=0)
    np.savez(tmp_path / "calib.npz", a=images.array[:16], b=images.array[16:])
    from_npz = quantize_int8(digits.onnx, tmp_path / "calib.npz", tmp_path / "a.onnx", num_calib=32, method="max")
    from_dir = quantize_int8(digits.onnx, digits.calib_dir, tmp_path / "b.onnx", num_calib=32, method="max")
    a, b = (_inits(onnx.load(r.path)) for r in (from_npz, from_dir))
    scales = [k for k in a if k.endswith("_scale")]
    assert scales and all(np.array_equal(numpy_helper.to_array(a[k]), numpy_helper.to_array(b[k])) for k in scales)
    np.savez(tmp_path / "bad.npz", a=images.array[:, :, :32])
    with pytest.raises(VanexportError, match="shape"):
        quantize_int8(digits.onnx, tmp_path / "bad.npz", tmp_path / "c.onnx", num_calib=8)


def test_already_converted_files_are_refused(int8, tmp_path):
    with pytest.raises(VanexportError, match="already INT8"):
        convert_fp16(int8.path, tmp_path / "x.onnx")


def test_sensitivity_finds_a_planted_bad_layer(digits, tmp_path):
    """benchmarks/planted_layer.py's planted layer (one LayerNorm channel x1000 before /patch_embed2, the FP32
    function unchanged): that script measures on all 400 held-out images what this test checks on 40."""
    from vanexport.precision.sensitivity import sensitivity

    planted = tmp_path / "planted.onnx"
    conv = benchmark("planted_layer").plant_activation_outlier(digits.onnx, planted)
    heldout = class_subset(digits.heldout_dir, tmp_path / "heldout", 4)  # 40: the planted layer flips most of them
    assert validate(planted, images=heldout).passed  # still the same FP32 function
    report = sensitivity(planted, digits.calib_dir, images=heldout, depth=1, num_calib=64, method="max")
    assert not report.baseline["passed"]  # the whole model in INT8 fails
    assert report.groups[0]["name"] == "/patch_embed2" and conv.startswith(report.groups[0]["name"] + "/")
    assert report.recommended[0] == "^/patch_embed2/" and report.passed
    fixed = quantize_int8(planted, digits.calib_dir, tmp_path / "fixed.onnx", num_calib=64, method="max",
                          exclude=report.recommended, images=heldout)
    assert fixed.validation["passed"] and conv in fixed.kept_fp32


def test_cli_fp16_and_fp16_sensitivity(digits, small, tmp_path):
    run = CliRunner().invoke
    r = run(cli, ["fp16", digits.onnx, "-o", str(tmp_path / "m.onnx"), "--keep-fp32", "^/nomatch/", "--json"])
    assert r.exit_code == 0, r.output
    record = json.loads(r.stdout)
    assert record["precision"] == "fp16" and record["path"] == str(tmp_path / "m.onnx")
    assert "'^/nomatch/' matches no node" in r.stderr and "converting to FP16" in r.stderr
    r = run(cli, ["sensitivity", digits.onnx, "--precision", "fp16", "--images", str(small["heldout"]), "--depth", "1",
                  "--num-images", "20", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["precision"] == "fp16" and report["n_images"] == 20 and report["baseline"]["passed"]
    names = [g["name"] for g in report["groups"]]
    assert {"/patch_embed1", "/block4.1", "/head"} <= set(names) and report["recommended"] == []
    r = run(cli, ["sensitivity", digits.onnx, "--images", str(small["heldout"])])
    assert r.exit_code == 2 and "INT8 sensitivity needs calibration data" in r.stderr
