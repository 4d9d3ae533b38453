"""`vanexport trt`'s chain: which artifacts it makes, which it reuses (by hash), and what it hands the builder.

TensorRT is not needed: the machine check answers as a TensorRT 10.16 / A10 machine would and the builder only
records what it was asked to build. Export and FP16/INT8 conversion are the real ones.
"""
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import onnx
import pytest
import torch

from vanexport.errors import VanexportError
from vanexport.formats.onnx_metadata import read_metadata
from vanexport.files import sha256_file
from vanexport import machine, pipeline
from vanexport.trt.build import EngineResult
from vanexport.pipeline import converted_is_current, export_trt, plan_reuse_problem
from vanexport.machine import GpuInfo
from vanexport.formats.engine_manifest import manifest_path, write_manifest
from vanexport.trt.settings import BuildSettings

A10 = GpuInfo("NVIDIA A10", "8.6", "12.4")


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory):
    from vanexport.export.onnx import export_onnx

    path = tmp_path_factory.mktemp("shared") / "van_b0_224.onnx"
    export_onnx("b0", output=path, validate=False)
    return path


@pytest.fixture
def builds(tmp_path, monkeypatch, fp32_onnx):
    """A working folder that already has engines/van_b0_224.onnx, on a machine with TensorRT 10.16.1.11 and an
    A10; returns the list of build_engine calls."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "engines").mkdir()
    shutil.copy(fp32_onnx, tmp_path / "engines" / "van_b0_224.onnx")
    monkeypatch.setattr(machine, "require_tensorrt", lambda device=0: (SimpleNamespace(__version__="10.16.1.11"), A10))
    calls = []

    def build_engine(source, settings, output, **kwargs):
        calls.append(SimpleNamespace(source=Path(source), settings=settings, output=Path(output), kwargs=kwargs))
        return EngineResult(str(output), "0" * 64, str(manifest_path(output)), {}, False, {})

    monkeypatch.setattr(pipeline, "build_engine", build_engine)
    return calls


def _stages(result):
    return [(a["stage"], a["reused"]) for a in result.artifacts]


@pytest.mark.slow
def test_fp16_chain_converts_once_and_builds_from_the_fp16_onnx(builds):
    r = export_trt(precision="fp16", settings=BuildSettings(max_batch=16))
    assert _stages(r) == [("onnx", True), ("fp16", False), ("engine", False)]
    (call,) = builds
    assert call.source == Path("engines/van_b0_224_fp16.onnx") and call.output == Path("engines/van_b0_224_fp16.plan")
    assert call.settings == BuildSettings(precision="fp16", max_batch=16) and call.kwargs["validate"] is True
    meta = read_metadata(call.source)
    assert meta.precision == "fp16" and meta.extra["source_sha256"] == sha256_file("engines/van_b0_224.onnx")
    digest = sha256_file(call.source)

    r = export_trt(precision="fp16", settings=BuildSettings(max_batch=16))
    assert _stages(r) == [("onnx", True), ("fp16", True), ("engine", False)]  # no plan on disk yet: built again
    assert sha256_file(call.source) == digest

    # The FP32 file changes (same weights, other bytes): its FP16 conversion is stale and is made again.
    proto = onnx.load("engines/van_b0_224.onnx")
    proto.doc_string = "edited"
    onnx.save(proto, "engines/van_b0_224.onnx")
    r = export_trt(precision="fp16")
    assert _stages(r) == [("onnx", True), ("fp16", False), ("engine", False)]
    assert read_metadata(call.source).extra["source_sha256"] == sha256_file("engines/van_b0_224.onnx")
    r = export_trt("engines/van_b0_224.onnx", precision="fp16", force=True)
    assert _stages(r) == [("onnx", True), ("fp16", False), ("engine", False)]


def test_other_weights_mean_a_new_export(builds, b0, tmp_path):
    sd = {k: v.clone() for k, v in b0[1].items()}
    sd["head.bias"] += 1.0
    torch.save({"state_dict": sd}, tmp_path / "tuned.pth")
    before = sha256_file("engines/van_b0_224.onnx")
    r = export_trt(weights=str(tmp_path / "tuned.pth"), precision="fp32")
    assert _stages(r) == [("onnx", False), ("engine", False)]
    assert sha256_file("engines/van_b0_224.onnx") != before
    assert read_metadata("engines/van_b0_224.onnx").weights_source == str(tmp_path / "tuned.pth")
    assert builds[-1].source == Path("engines/van_b0_224.onnx") and builds[-1].output == Path("engines/van_b0_224_fp32.plan")
    assert builds[-1].kwargs["weights"] == str(tmp_path / "tuned.pth")  # the reference for validation
    r = export_trt(weights=str(tmp_path / "tuned.pth"), precision="fp32")
    assert _stages(r) == [("onnx", True), ("engine", False)]


def test_a_current_plan_is_reused_without_building(builds, make_manifest, capsys):
    export_trt(precision="fp16")
    call = builds[-1]
    call.output.write_bytes(b"plan bytes")  # stands for the plan this build would have written
    write_manifest(make_manifest(call.output, settings=call.settings, source_sha=sha256_file(call.source)),
                   manifest_path(call.output))
    r = export_trt(precision="fp16")
    assert _stages(r) == [("onnx", True), ("fp16", True), ("engine", True)] and len(builds) == 1
    assert r.engine["manifest"]["plan"]["sha256"] == sha256_file(call.output)
    from vanexport.cli.render import render_trt

    render_trt(r.to_dict())
    out = capsys.readouterr().out
    assert "engines/van_b0_224_fp16.plan" in out and "reused" in out and "fp16 engines/van_b0_224_fp16.onnx (reused)" in out
    assert "FP16 engine, TensorRT 10.16.1.11 (strongly typed, hardware compatibility none)" in out
    export_trt(precision="fp16", settings=BuildSettings(opt_level=5))  # other settings: built again
    assert len(builds) == 2 and builds[-1].settings.opt_level == 5


def test_weak_typing_builds_fp16_from_the_fp32_onnx(builds):
    r = export_trt(precision="fp16", settings=BuildSettings(precision="fp16", weak_typing=True))
    assert _stages(r) == [("onnx", True), ("engine", False)]
    assert builds[-1].source == Path("engines/van_b0_224.onnx") and builds[-1].output == Path("engines/van_b0_224_fp16.plan")


@pytest.mark.slow
@pytest.mark.usefixtures("small_entropy_histograms")  # the chain's reuse is checked, not the ranges
def test_int8_chain_calibrates_once(builds, tmp_path):
    from PIL import Image
    from skimage import data

    calib = tmp_path / "calib"
    calib.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(data, name)()[..., :3]).save(calib / f"{name}.png")
    with pytest.raises(VanexportError, match="--int8 needs calibration images"):
        export_trt(precision="int8")
    r = export_trt(precision="int8", calib=str(calib), num_calib=4)
    assert _stages(r) == [("onnx", True), ("int8", False), ("engine", False)]
    int8 = Path("engines/van_b0_224_int8.onnx")
    assert builds[-1].source == int8 and read_metadata(int8).precision == "int8"
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(int8)).graph.node)
    r = export_trt(precision="int8", calib=str(calib), num_calib=4)
    assert _stages(r) == [("onnx", True), ("int8", True), ("engine", False)]
    # another image set or count is another recipe
    settings = json.loads(read_metadata(int8).extra["precision_settings"])
    src_sha = sha256_file("engines/van_b0_224.onnx")
    recipe = {"method": "entropy", "num_calib": 4, "calibration_sha256": settings["calibration_sha256"]}
    assert converted_is_current(int8, "int8", src_sha, recipe)
    assert not converted_is_current(int8, "int8", src_sha, {**recipe, "num_calib": 8})
    (calib / "coffee.png").unlink()
    assert pipeline.precision_recipe("int8", calib=calib, num_calib=4)["calibration_sha256"] != settings["calibration_sha256"]
    assert not converted_is_current(int8, "int8", "0" * 64, recipe)


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "engines/van_b0_224.onnx", "variant": "b1"}, "pass either MODEL.onnx or --variant"),
    ({"model": "engines/missing.onnx"}, "model file 'engines/missing.onnx' not found"),
    ({"precision": "fp64"}, "unknown precision 'fp64'"),
])
def test_chain_user_errors(builds, kwargs, message):
    with pytest.raises(VanexportError, match=message):
        export_trt(**kwargs)
    assert not builds


def test_a_converted_model_is_not_converted_again(builds):
    export_trt(precision="fp16")
    r = export_trt("engines/van_b0_224_fp16.onnx")  # its own precision by default
    assert _stages(r) == [("onnx", True), ("engine", False)] and builds[-1].settings.precision == "fp16"
    with pytest.raises(VanexportError, match="is already FP16; a INT8 ONNX is made from the FP32 one"):
        export_trt("engines/van_b0_224_fp16.onnx", precision="int8", calib=".")


def test_plan_reuse_problems(tmp_path, make_manifest):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"plan bytes")
    settings = BuildSettings(precision="fp16")
    write_manifest(make_manifest(plan, settings=settings, source_sha="cd" * 32), manifest_path(plan))

    def problem(**kw):
        args = {"source_sha256": "cd" * 32, "settings": settings, "tensorrt_version": "10.16.1.11", "gpu": A10}
        return plan_reuse_problem(plan, **{**args, **kw})

    assert problem() is None
    assert problem(source_sha256="ef" * 32) == "its source ONNX changed"
    assert problem(settings=BuildSettings(precision="fp16", max_batch=64, tf32=True)) == \
        "other build settings (max_batch, tf32)"
    assert "this machine has TensorRT 10.17.0.1" in problem(tensorrt_version="10.17.0.1")
    assert problem(gpu=GpuInfo("NVIDIA A40", "8.6")) == "it was tuned on a NVIDIA A10"
    assert plan_reuse_problem(tmp_path / "none.plan", "cd" * 32, settings, "10.16.1.11", A10) == "no plan yet"
    write_manifest(make_manifest(plan, settings=settings, source_sha="cd" * 32, validated=False), manifest_path(plan))
    assert problem() == "it was never validated" and problem(validated=False) is None
    plan.write_bytes(b"other bytes")
    assert "does not match its manifest" in problem()


def test_build_engine_checks_its_inputs_before_tensorrt_does(fp32_onnx, tmp_path, monkeypatch):
    from vanexport.trt.build import build_engine

    with pytest.raises(VanexportError, match="the ONNX file is FP32 but a FP16 engine needs a FP16 ONNX file"):
        build_engine(fp32_onnx, BuildSettings(precision="fp16"), tmp_path / "x.plan")
    with pytest.raises(VanexportError, match="takes only 224x224 images, not 256"):
        build_engine(fp32_onnx, BuildSettings(img_size=256), tmp_path / "x.plan")
    t4 = GpuInfo("Tesla T4", "7.5")
    monkeypatch.setattr(machine, "require_tensorrt", lambda device=0: (SimpleNamespace(__version__="10.16.1.11"), t4))
    with pytest.raises(VanexportError, match="--hw-compat ampere.* needs an Ampere or newer GPU to build on; this Tesla T4"):
        build_engine(fp32_onnx, BuildSettings(hw_compat="ampere+"), tmp_path / "x.plan")
    assert not list(tmp_path.iterdir())
