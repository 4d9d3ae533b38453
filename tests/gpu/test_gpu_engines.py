"""Real TensorRT engines (FP32, FP16, INT8) built from a trained VAN-b0 and checked against PyTorch.

Run with `make test-gpu` (or `pytest -m "gpu or tensorrt" -rs tests/gpu`). Every test skips, with the one-line
reason vanexport itself would print, on a machine without TensorRT, an NVIDIA driver or a CUDA GPU. PyTorch runs
on the CPU here (the reference); the TensorRT backend needs no PyTorch at all.
"""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vanexport.errors import VanexportError


def _what_is_missing() -> str | None:
    from vanexport.machine import require_tensorrt

    try:
        require_tensorrt()
    except VanexportError as e:
        return str(e)
    return None


MISSING = _what_is_missing()
pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt,
              pytest.mark.skipif(MISSING is not None, reason=f"needs TensorRT and a CUDA GPU: {MISSING}")]
PRECISIONS = ("fp32", "fp16", "int8")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The chain writes into ./engines: run it in a folder of its own."""
    old = os.getcwd()
    folder = tmp_path_factory.mktemp("trt")
    os.chdir(folder)
    yield folder
    os.chdir(old)


PROGRESS: list[str] = []


@pytest.fixture(scope="module")
def engines(digits, workdir):
    """One engine per precision from the digits model's FP32 ONNX (64x64, 10 classes), validated on held-out
    images while being built."""
    from vanexport.pipeline import export_trt

    return {p: export_trt(digits.onnx, precision=p, weights=digits.weights, images=digits.heldout_dir,
                          calib=digits.calib_dir if p == "int8" else None, num_calib=256, progress=PROGRESS.append)
            for p in PRECISIONS}


@pytest.fixture(scope="module")
def heldout(digits):
    """Held-out images, their labels, and the PyTorch FP32 logits for them."""
    import torch

    from vanexport.data.images import label_indices, load_folder
    from vanexport.formats.onnx_metadata import read_metadata
    from vanexport.model.factory import load_model

    meta = read_metadata(digits.onnx)
    images = load_folder(digits.heldout_dir, meta.preprocess)
    model, _, _ = load_model(meta.variant, digits.weights, meta.num_classes, quiet=True)
    with torch.inference_mode():
        ref = model(torch.from_numpy(images.array)).numpy()
    return images.array, label_indices(images.labels, meta.num_classes), ref


def _run(backend, x, batch=32):
    return np.concatenate([backend(x[i:i + batch]) for i in range(0, len(x), batch)])


@pytest.mark.parametrize("precision", PRECISIONS)
def test_engine_matches_pytorch(engines, heldout, precision):
    from vanexport.check import metrics
    from vanexport.runtime.tensorrt_backend import TensorRTBackend
    from vanexport.machine import import_tensorrt

    r = engines[precision]
    m = r.engine["manifest"]
    assert r.engine["validation"]["passed"]
    assert m["precision"] == precision and m["tensorrt"]["version"] == import_tensorrt().__version__
    assert m["inputs"][0]["profile"] == {"min": [1, 3, 64, 64], "opt": [8, 3, 64, 64], "max": [32, 3, 64, 64]}
    assert m["outputs"][0]["shape"][-1] == 10 and m["num_classes"] == 10

    backend = TensorRTBackend(r.engine["path"])
    x, labels, ref = heldout
    out = _run(backend, x)
    c = metrics.compare_logits(out, ref)
    if precision == "fp32":
        assert c["max_abs_err"] <= 1e-3
    elif precision == "fp16":
        assert c["top1_agree"] >= 0.995 and c["min_cosine"] >= 0.9999
    else:
        drop = 100 * (float((ref.argmax(1) == labels).mean()) - float((out.argmax(1) == labels).mean()))
        assert c["top1_agree"] >= 0.97 and drop <= 1.0
    if precision == "fp32":  # another batch size may pick other kernels, but not other results
        assert np.abs(backend(x[:5]) - out[:5]).max() <= 1e-4


def test_layer_table_shows_the_precision_each_layer_runs_in(engines):
    from vanexport.inspection import inspect_file

    precisions = {}
    for p in PRECISIONS:
        report = inspect_file(engines[p].engine["path"])
        assert report.details["hash_ok"] and report.details["fits_this_machine"]
        layers = report.details["layers"]
        assert layers and all(row["type"] for row in layers)  # DETAILED verbosity: full rows
        precisions[p] = {row["precision"] for row in layers}
    assert any("fp16" in s for s in precisions["fp16"]) and not any("fp16" in s for s in precisions["fp32"])
    assert any("int8" in s for s in precisions["int8"])


def test_a_request_outside_the_profile_is_a_clear_error(engines):
    from vanexport.runtime.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(engines["fp32"].engine["path"])
    with pytest.raises(VanexportError, match=r"outside the engine's optimization profile .*max 32x3x64x64"):
        backend(np.zeros((33, 3, 64, 64), np.float32))
    with pytest.raises(VanexportError, match="resize the images to 64x64"):
        backend(np.zeros((2, 3, 96, 96), np.float32))


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["gpu"].update(compute_capability="5.0"), "built for compute capability 5.0"),
    (lambda m: m["tensorrt"].update(version="9.0.0.1"), "built with TensorRT 9.0.0.1 but this machine has"),
    (None, "does not match its manifest"),
])
def test_plans_that_do_not_fit_are_refused_before_tensorrt_sees_them(engines, tmp_path, edit, message):
    from vanexport.runtime.tensorrt_backend import TensorRTBackend
    from vanexport.formats.engine_manifest import manifest_path

    src = engines["fp16"].engine["path"]
    plan = tmp_path / "copy.plan"
    shutil.copy(src, plan)
    data = json.loads(manifest_path(src).read_text())
    if edit is None:
        raw = bytearray(plan.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        plan.write_bytes(bytes(raw))
    else:
        edit(data)
    manifest_path(plan).write_text(json.dumps(data))
    with pytest.raises(VanexportError, match=message):
        TensorRTBackend(plan)


def test_a_second_run_reuses_the_plan_and_the_timing_cache_exists(engines, digits):
    from vanexport.pipeline import export_trt

    again = export_trt(digits.onnx, precision="fp16", weights=digits.weights, images=digits.heldout_dir)
    assert again.engine["reused"] and again.engine["sha256"] == engines["fp16"].engine["sha256"]
    cache = engines["fp16"].engine["manifest"]["build"]["timing_cache"]
    assert cache and os.path.getsize(cache) > 0


def test_validate_command_on_a_plan(engines, digits):
    from vanexport.cli import cli

    r = CliRunner().invoke(cli, ["validate", engines["fp16"].engine["path"], "--weights", digits.weights,
                                 "--images", digits.heldout_dir, "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["passed"] and report["precision"] == "fp16" and report["runtime"].startswith("TensorRT ")


def test_dynamic_hw_profile(workdir):
    import torch

    from vanexport.export.onnx import export_onnx
    from vanexport.model.factory import load_model
    from vanexport.runtime.tensorrt_backend import TensorRTBackend
    from vanexport.trt.build import build_engine
    from vanexport.trt.settings import BuildSettings

    onnx_path = workdir / "dyn.onnx"
    export_onnx("b0", img_size=64, dynamic_hw=True, output=onnx_path, num_classes=10)
    result = build_engine(onnx_path, BuildSettings(max_batch=4, min_img_size=32, max_img_size=128),
                          workdir / "dyn.plan")
    assert result.manifest["inputs"][0]["profile"]["max"] == [4, 3, 128, 128]
    backend = TensorRTBackend(result.path)
    model, _, _ = load_model("b0", None, 10, quiet=True)
    for size in (32, 96, 128):
        x = np.random.default_rng(size).uniform(-1, 1, (3, 3, size, size)).astype(np.float32)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        assert np.abs(backend(x) - ref).max() <= 1e-3


def test_portable_builds_say_so_and_still_load(engines, digits, workdir):
    from vanexport.runtime.tensorrt_backend import TensorRTBackend
    from vanexport.trt.build import build_engine
    from vanexport.trt.settings import BuildSettings

    backend = TensorRTBackend(engines["fp32"].engine["path"])
    portable = BuildSettings(version_compatible=True, hw_compat="ampere+" if backend.gpu.cc >= (8, 0) else "none")
    result = build_engine(digits.onnx, portable, workdir / "portable.plan", weights=digits.weights)
    t = result.manifest["tensorrt"]
    assert t["version_compatible"] is True and t["hardware_compatibility"] == portable.hw_compat
    loaded = TensorRTBackend(result.path)
    assert any("lean runtime" in w for w in loaded.warnings)
    x = np.random.default_rng(1).uniform(-1, 1, (4, 3, 64, 64)).astype(np.float32)
    assert np.abs(loaded(x) - backend(x)).max() <= 1e-3


def test_weak_typing_where_the_installed_tensorrt_has_it(digits, workdir):
    from vanexport.trt.build import build_engine
    from vanexport.machine import import_tensorrt
    from vanexport.trt.settings import BuildSettings

    trt = import_tensorrt()
    settings = BuildSettings(precision="fp16", weak_typing=True)
    if hasattr(trt.BuilderFlag, "FP16"):  # TensorRT 10
        result = build_engine(digits.onnx, settings, workdir / "weak.plan", weights=digits.weights,
                              images=digits.heldout_dir)
        assert result.manifest["tensorrt"]["typing"] == "weak" and result.validation["passed"]
    else:  # TensorRT 11 removed weak typing
        with pytest.raises(VanexportError, match="has no weak typing"):
            build_engine(digits.onnx, settings, workdir / "weak.plan")


def test_parser_errors_name_the_node(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from vanexport.runtime import tensorrt_engine as trt_engine
    from vanexport.machine import import_tensorrt

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="fine"),
         helper.make_node("NoSuchOp", ["y"], ["z"], name="the_bad_one", domain="vanexport.test")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("vanexport.test", 1)])
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    from vanexport.runtime import cuda
    from vanexport.trt.builder import parse_onnx

    trt = import_tensorrt()
    with cuda.Device(0), trt_engine.capture(trt) as log:
        with pytest.raises(VanexportError, match=r"node 1 'the_bad_one' \(NoSuchOp\)"):
            parse_onnx(trt, log, path, 0)


def test_the_progress_monitor_reports_build_phases(engines):
    phases = [line for line in PROGRESS if line.startswith("TensorRT: ")]
    assert phases, PROGRESS  # IProgressMonitor.phase_start of top-level phases, as they happened


def test_no_pytorch_cuda_in_the_process_that_runs_plans(engines):
    import sys

    from vanexport.runtime.tensorrt_backend import TensorRTBackend

    with TensorRTBackend(engines["fp16"].engine["path"]) as backend:
        backend(np.zeros((2, 3, 64, 64), np.float32))
    torch = sys.modules.get("torch")
    assert torch is None or not torch.cuda.is_initialized()  # the backend's memory is the driver API's


def test_a_profile_with_min_batch_above_one(digits, workdir, heldout):
    """Validation, predict-style batching and the bundle check all pad the last short chunk to the minimum."""
    from vanexport.runtime.batching import batch_limits, run_batched
    from vanexport.runtime.tensorrt_backend import TensorRTBackend
    from vanexport.trt.build import build_engine
    from vanexport.trt.settings import BuildSettings

    r = build_engine(digits.onnx, BuildSettings(min_batch=4, opt_batch=4, max_batch=8), workdir / "min4.plan",
                     weights=digits.weights, images=digits.heldout_dir)
    assert r.validation["passed"] and r.manifest["inputs"][0]["profile"]["min"][0] == 4
    x, _, ref = heldout
    with TensorRTBackend(r.path) as backend:
        size, low = batch_limits(None, backend.profile)
        out = run_batched(backend, x[:13], size, low)  # 8 + 5, and 13 is not a multiple of 4
        with pytest.raises(VanexportError, match="send at least 4 images per call"):
            backend(x[:3])
    assert out.shape == (13, 10) and np.abs(out - ref[:13]).max() <= 1e-3


def test_a_foreign_timing_cache_is_not_used_and_never_emptied(digits, workdir):
    from vanexport.trt.build import build_engine
    from vanexport.trt.settings import BuildSettings
    from vanexport.trt.timing_cache import key_path

    folder = workdir / "foreign"
    folder.mkdir()
    cache = folder / "timing.cache"
    cache.write_bytes(b"\0" * 64)
    key_path(cache).write_text(json.dumps({"tensorrt": "0.0.0", "compute_capability": "1.0"}))
    r = build_engine(digits.onnx, BuildSettings(), folder / "m.plan", validate=False)
    assert any("not used" in w for w in r.warnings)
    assert cache.stat().st_size > 0 and cache.read_bytes() != b"\0" * 64  # this build's, keyed for this GPU
    cache.write_bytes(b"garbage" * 20)
    key_path(cache).unlink()  # unkeyed: TensorRT's own header check decides
    r = build_engine(digits.onnx, BuildSettings(), folder / "m.plan", validate=False)
    assert cache.stat().st_size > 0 and cache.read_bytes() != b"garbage" * 20, r.warnings


def test_trt_bundle_then_predict_with_the_plan(digits, workdir):
    from vanexport.cli import cli
    from vanexport.device.classify import predict
    from vanexport.ship.bundle import make_bundle

    bundle = workdir / "digits.tar.gz"
    make_bundle(model=digits.onnx, weights=digits.weights, precisions=("fp32", "fp16"), images=digits.heldout_dir,
                output=bundle)
    r = CliRunner().invoke(cli, ["trt", "--bundle", str(bundle), "--fp16", "--json"])
    assert r.exit_code == 0, r.output
    built = json.loads(r.stdout)
    assert built["check"]["passed"]
    images = sorted(Path(digits.heldout_dir).rglob("*.png"))[:24]
    with_plan = predict(images, bundle)
    assert with_plan.backend["backend"] == "tensorrt" and with_plan.backend["precision"] == "fp16"
    on_cpu = predict(images, bundle, backend="onnxruntime-cpu", precision="fp16")
    agree = np.mean([a["top"][0]["index"] == b["top"][0]["index"]
                     for a, b in zip(with_plan.predictions, on_cpu.predictions)])
    assert agree >= 0.95


def test_the_inspect_command_on_a_plan(engines):
    from vanexport.cli import cli

    r = CliRunner().invoke(cli, ["inspect", engines["int8"].engine["path"], "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)["details"]
    assert d["fits_this_machine"] and d["manifest"]["platform"]["system"]
    assert any("int8" in row["precision"] for row in d["layers"])
    r = CliRunner().invoke(cli, ["inspect", engines["fp16"].engine["path"]])
    assert r.exit_code == 0 and "fp16" in r.stdout
