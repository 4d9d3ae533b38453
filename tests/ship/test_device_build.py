"""`vanexport trt --bundle`: the on-device build flow around TensorRT.

TensorRT and a GPU are not here, so the two calls that need them are replaced: `build_engine` writes opaque plan
bytes with a real manifest (as `vanexport trt` would), and the "engine" is ONNX Runtime running the bundled ONNX
(a correct engine) or the same with shifted logits (a wrong one). What is tested is everything around them: the
check against the bundle's recorded outputs, the timing cache round trip, and the atomic update of the bundle.
"""
import shutil
import types

import numpy as np
import pytest
from click.testing import CliRunner

from vanexport.cli import cli
from vanexport.errors import ValidationFailed
from vanexport.device.archive import read_bundle
from vanexport.ship.on_device import build_into_bundle
from vanexport.trt.settings import BuildSettings


@pytest.fixture
def bundle(tmp_path, b0_bundle):
    path = tmp_path / "b.tar.gz"
    shutil.copy(b0_bundle[0], path)
    return path


@pytest.fixture
def fake_device(monkeypatch, make_manifest):
    """Replace the TensorRT-only calls; `shift` makes the fake engine wrong by that much per logit."""
    from vanexport.runtime import tensorrt_backend
    from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from vanexport import machine
    from vanexport.trt import build
    from vanexport.machine import GpuInfo
    from vanexport.formats.engine_manifest import Profile, manifest_path, write_manifest

    state = {"shift": 0.0, "onnx": None, "cache_in": None}

    def fake_build(onnx, settings, output, timing_cache, validate, device, progress):
        from vanexport.files import sha256_file

        state["onnx"], state["cache_in"] = onnx, timing_cache.read_bytes() if timing_cache.exists() else None
        output.write_bytes(b"\x00opaque plan bytes")
        timing_cache.write_bytes(b"timings measured on this device")
        write_manifest(make_manifest(output, gpu=GpuInfo("Orin", "8.7"), source_sha=sha256_file(onnx)),
                       manifest_path(output))
        return types.SimpleNamespace(path=str(output), to_dict=lambda: {"seconds": {"build": 1.0}})

    class FakeEngine:
        def __init__(self, plan, device=0):
            self.ort = OnnxRuntimeBackend(state["onnx"])
            self.profile = Profile([1, 3, 64, 64], [4, 3, 64, 64], [4, 3, 64, 64])

        def __call__(self, x):
            assert len(x) <= 4  # the check respects the engine's profile
            out = self.ort(x)
            return out + state["shift"] * np.arange(out.shape[1], dtype=np.float32)

    monkeypatch.setattr(machine, "require_tensorrt", lambda device=0: (None, GpuInfo("Orin", "8.7")))
    monkeypatch.setattr(build, "build_engine", fake_build)
    monkeypatch.setattr(tensorrt_backend, "TensorRTBackend", FakeEngine)
    return state


def test_engine_built_on_the_device_is_checked_and_added(bundle, fake_device):
    result = build_into_bundle(bundle, BuildSettings(precision="fp32"))
    assert result["check"]["passed"] and result["check"]["overall"]["top1_agree"] == 1.0
    m = read_bundle(bundle)  # the rewritten archive passes every check
    assert [e["file"] for e in m["engines"]] == [f"engines/{result['engine']}"]
    assert m["engines"][0]["validation"]["passed"] and m["timing_cache"]
    # a second build starts from the timing cache the first one left in the bundle
    build_into_bundle(bundle, BuildSettings(precision="fp32"))
    assert fake_device["cache_in"] == b"timings measured on this device"
    assert len(read_bundle(bundle)["engines"]) == 1  # same engine name: replaced, not duplicated


def test_a_wrong_engine_leaves_the_bundle_untouched(bundle, fake_device):
    before = bundle.read_bytes()
    fake_device["shift"] = 0.05
    with pytest.raises(ValidationFailed, match="does not match the bundled ONNX.*bundle was not changed"):
        build_into_bundle(bundle, BuildSettings(precision="fp32"))
    assert bundle.read_bytes() == before


def test_a_precision_the_bundle_lacks_is_a_user_error(bundle, fake_device):
    r = CliRunner().invoke(cli, ["trt", "--bundle", str(bundle), "--fp16"])
    assert r.exit_code == 2 and "the bundle has no FP16 ONNX file" in r.stderr


def test_cli_without_tensorrt_fails_fast_and_keeps_the_bundle(bundle):
    before = bundle.read_bytes()
    r = CliRunner().invoke(cli, ["trt", "--bundle", str(bundle), "--fp32"])
    assert r.exit_code == 2 and r.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "TensorRT" in r.stderr and bundle.read_bytes() == before


def test_bundle_excludes_model_flags(bundle):
    r = CliRunner().invoke(cli, ["trt", "--bundle", str(bundle), "--variant", "b1", "--calib", "x"])
    assert r.exit_code == 2 and "--variant, --calib cannot be used with it" in r.stderr
