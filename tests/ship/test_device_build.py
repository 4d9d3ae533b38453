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

    state = {"shift": 0.0, "onnx": None, "cache_in": None, "profile": ([1, 3, 64, 64], [4, 3, 64, 64], [4, 3, 64, 64]),
             "batches": [], "closed": 0, "cache_out": b"timings measured on this device"}

    def fake_build(onnx, settings, output, timing_cache, validate, device, progress):
        from vanexport.files import sha256_file

        state["onnx"], state["cache_in"] = onnx, timing_cache.read_bytes() if timing_cache.exists() else None
        output.write_bytes(b"\x00opaque plan bytes")
        if state["cache_out"]:  # build_engine writes no cache when the build timed nothing
            timing_cache.write_bytes(state["cache_out"])
        write_manifest(make_manifest(output, gpu=GpuInfo("Orin", "8.7"), source_sha=sha256_file(onnx)),
                       manifest_path(output))
        return types.SimpleNamespace(path=str(output), to_dict=lambda: {"seconds": {"build": 1.0}})

    class FakeEngine:
        def __init__(self, plan, device=0):
            self.ort = OnnxRuntimeBackend(state["onnx"])
            self.profile = Profile(*state["profile"])

        def __call__(self, x):
            lo, hi = self.profile.min[0], self.profile.max[0]
            assert lo <= len(x) <= hi  # the check respects the engine's profile, both ends
            state["batches"].append(len(x))
            out = self.ort(x)
            return out + state["shift"] * np.arange(out.shape[1], dtype=np.float32)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            state["closed"] += 1

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


def test_a_profile_with_a_minimum_batch_above_one(bundle, fake_device):
    """The bundle has 8 check images (or fewer); a profile of 3..3 takes them in threes, the last chunk padded."""
    from vanexport.device.bundle import open_bundle

    fake_device["profile"] = ([3, 3, 64, 64], [3, 3, 64, 64], [3, 3, 64, 64])
    n = len(open_bundle(bundle).check_inputs())
    result = build_into_bundle(bundle, BuildSettings(precision="fp32"))
    assert result["check"]["passed"] and result["check"]["overall"]["n"] == n  # padding not counted
    assert set(fake_device["batches"]) == {3} and len(fake_device["batches"]) == -(-n // 3)
    assert fake_device["closed"] == 1  # the engine is let go before the bundle is rewritten


def test_no_empty_timing_cache_goes_into_the_bundle(bundle, fake_device):
    fake_device["cache_out"] = b""
    build_into_bundle(bundle, BuildSettings(precision="fp32"))
    assert read_bundle(bundle)["timing_cache"] is None


def test_weak_typing_builds_fp16_from_the_fp32_onnx_and_checks_against_fp16(bundle, tmp_path, fake_device,
                                                                           monkeypatch):
    """Weak typing lowers the FP32 graph with the FP16 flag (DLA builds on TensorRT 10): the build reads the FP32
    ONNX; the check compares with the bundle's FP16 outputs. (The b0 bundle is FP32 only: an FP16 file and its
    outputs are stood in for by copies of the FP32 ones.)"""
    from vanexport.device import bundle as device_bundle

    checked = []
    real_check, real_open = device_bundle.check_engine_against_bundle, device_bundle.open_bundle

    class WithFp16:
        def __init__(self, inner):
            self.inner = inner

        def onnx(self, precision):
            if precision == "fp32":
                return self.inner.onnx("fp32")
            fp16 = tmp_path / "van_b0_64_fp16.onnx"
            fp16.write_bytes(self.inner.onnx("fp32").read_bytes())
            return fp16

        def __getattr__(self, name):
            return getattr(self.inner, name)

    def check(b, backend, precision, **kw):
        checked.append(precision)
        return real_check(b.inner, backend, "fp32", **kw)

    monkeypatch.setattr(device_bundle, "open_bundle", lambda path: WithFp16(real_open(path)))
    monkeypatch.setattr(device_bundle, "check_engine_against_bundle", check)
    monkeypatch.setattr("vanexport.ship.bundle.add_engine_to_bundle",
                        lambda *a, **k: types.SimpleNamespace(to_dict=lambda: {}))
    build_into_bundle(bundle, BuildSettings(precision="fp16", weak_typing=True))
    assert fake_device["onnx"].name == "van_b0_64_fp32.onnx" and checked == ["fp16"]
    build_into_bundle(bundle, BuildSettings(precision="fp16"))  # strongly typed: from the FP16 file
    assert fake_device["onnx"] == tmp_path / "van_b0_64_fp16.onnx"
