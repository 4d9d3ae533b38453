"""`build_engine` around TensorRT, with the CUDA driver and TensorRT stand-ins (tests/stand_ins.py): the device
that builds, the builder configuration, the timing cache and its key, DLA rules and placement, the integrated-GPU
workspace, the platform in the manifest, and failures (one line, nothing written). Validation against PyTorch is
off: the stand-in engine computes something else than VAN."""
import json

import pytest
from stand_ins import FakeCache, FakeConfig, FakeTensorRT, parser_error

from vanexport.errors import VanexportError
from vanexport.machine import available_memory_bytes, host_platform
from vanexport.trt.build import build_engine
from vanexport.trt.settings import BuildSettings, default_workspace_bytes
from vanexport.trt.timing_cache import key_path

ORIN = {"name": "Orin", "cc": "8.7", "integrated": True, "memory": 32 * 2**30}


def build(onnx, out, settings=None, **kwargs):
    return build_engine(onnx, settings or BuildSettings(), out, validate=False, **kwargs)


def builds(trt):
    return [e[1] for e in trt.events if e[0] == "build"]


def test_the_build_runs_on_the_device_asked_for(b0_onnx_64, tmp_path, fake_gpu):
    fake_gpu.driver.devices.append({"name": "NVIDIA L4", "cc": "8.9"})
    steps = []
    r = build(b0_onnx_64, tmp_path / "m.plan", device=1, progress=steps.append)
    assert ("Builder", 1) in fake_gpu.trt.events and ("Runtime", 1) in fake_gpu.trt.events
    m = r.manifest
    assert m["gpu"]["name"] == "NVIDIA L4" and m["gpu"]["index"] == 1 and m["gpu"]["integrated"] is False
    assert m["platform"] == host_platform().to_dict()
    assert m["inputs"][0]["profile"] == {"min": [1, 3, 64, 64], "opt": [8, 3, 64, 64], "max": [32, 3, 64, 64]}
    (config,) = builds(fake_gpu.trt)
    assert "TF32" not in config["flags"] and config["verbosity"] == "DETAILED" and config["monitor"]
    assert config["pools"] == {} and config["hw"] == "NONE" and config["device_type"] == "GPU"
    assert "TensorRT: Building engine" in steps and "TensorRT: Tactic selection" not in steps  # top level only
    assert ("create_network", 1 << 1) in fake_gpu.trt.events  # STRONGLY_TYPED on TensorRT 10
    assert fake_gpu.driver.retained == {1: 0}  # device 0 was never touched, device 1 let go


def test_eleven_builds_strongly_typed_without_the_flag(b0_onnx_64, tmp_path, fake_gpu, monkeypatch):
    import sys

    trt11 = FakeTensorRT(fake_gpu.driver, version="11.4.0.106", weak_typing=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt11)
    assert build(b0_onnx_64, tmp_path / "m.plan").manifest["tensorrt"]["version"] == "11.4.0.106"
    assert ("create_network", 0) in trt11.events
    with pytest.raises(VanexportError, match="has no weak typing"):
        build(b0_onnx_64, tmp_path / "w.plan", BuildSettings(precision="fp16", weak_typing=True))


def test_the_timing_cache_is_reused_only_where_it_was_made(b0_onnx_64, tmp_path, fake_gpu):
    trt = fake_gpu.trt
    cache = tmp_path / "timing.cache"
    first = build(b0_onnx_64, tmp_path / "a.plan")
    assert json.loads(cache.read_bytes())["keys"] == ["tactic-0"]
    assert json.loads(key_path(cache).read_text()) == {"tensorrt": "10.16.1.11", "compute_capability": "8.6",
                                                       "gpu": "NVIDIA A10"}
    assert first.manifest["build"]["timing_cache"] == str(cache)
    build(b0_onnx_64, tmp_path / "b.plan")
    assert builds(trt)[-1]["cache_keys"] == ["tactic-0"]  # what the build started from: the cache, loaded
    assert json.loads(cache.read_bytes())["keys"] == ["tactic-0", "tactic-1"]  # and what it added

    # recorded for another GPU: not even handed to TensorRT, and replaced by this build's own
    key_path(cache).write_text(json.dumps({"tensorrt": "10.16.1.11", "compute_capability": "9.0"}))
    r = build(b0_onnx_64, tmp_path / "c.plan")
    assert builds(trt)[-1]["cache_keys"] == []  # started afresh
    assert any("on compute capability 9.0" in w and "not used" in w for w in r.warnings)
    assert json.loads(key_path(cache).read_text())["compute_capability"] == "8.6"

    # no record beside it (trtexec's, or a bundle's): TensorRT's own check refuses another device's cache
    key_path(cache).unlink()
    cache.write_bytes(FakeCache("trt10.16.1.11-sm9.0", ["h100-tactic"]).serialize())
    r = build(b0_onnx_64, tmp_path / "d.plan")
    assert builds(trt)[-1]["cache_keys"] == []
    assert any("made on another GPU or TensorRT version: not used" in w for w in r.warnings)


@pytest.mark.parametrize("returns", ["none", "empty"])
def test_a_corrupt_timing_cache_is_not_used_and_is_replaced(b0_onnx_64, tmp_path, fake_gpu, returns):
    """TensorRT logs why (the first of its two errors, NVIDIA/TensorRT#3566) and returns no cache, or a new empty
    one (which of the two is not documented: both are taken)."""
    fake_gpu.trt.corrupt_cache = returns
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"\x00garbage")
    r = build(b0_onnx_64, tmp_path / "e.plan")
    (note,) = [w for w in r.warnings if "not readable by TensorRT" in w]
    assert note.endswith("(1: [stdArchiveReader.cpp::nvinfer1::rt::StdArchiveReader::StdArchiveReaderInitCommon::36] "
                         "Error Code 1: Serialization (Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic "
                         "tag does not match))")
    assert builds(fake_gpu.trt)[-1]["cache_keys"] == []  # built from a new cache
    assert json.loads(cache.read_bytes())["keys"] == ["tactic-0"]  # and the corrupt file replaced by its timings


def test_an_empty_cache_never_replaces_one(b0_onnx_64, tmp_path, fake_gpu):
    cache = tmp_path / "timing.cache"
    foreign = FakeCache("trt10.16.1.11-sm9.0", ["h100-tactic"]).serialize()
    cache.write_bytes(foreign)
    key_path(cache).write_text(json.dumps({"tensorrt": "10.16.1.11", "compute_capability": "9.0"}))
    fake_gpu.trt.build_adds_timings = False  # e.g. every tactic came from elsewhere, or timing was skipped
    r = build(b0_onnx_64, tmp_path / "a.plan")
    assert cache.read_bytes() == foreign  # the old cache is kept, not emptied
    assert any("left no timings" in w for w in r.warnings)


def test_no_timing_cache_at_all(b0_onnx_64, tmp_path, fake_gpu):
    build(b0_onnx_64, tmp_path / "a.plan", timing_cache=None)
    assert not (tmp_path / "timing.cache").exists() and builds(fake_gpu.trt)[0]["cache_keys"] == []


def test_a_failed_build_says_why_and_writes_nothing(b0_onnx_64, tmp_path, fake_gpu):
    fake_gpu.trt.fail_build = True
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VanexportError, match=r"failed to build the engine \(10: Could not find any implementation"):
        build(b0_onnx_64, out / "m.plan")
    assert list(out.iterdir()) == []


def test_a_parser_failure_names_each_node_and_writes_nothing(b0_onnx_64, tmp_path, fake_gpu):
    """nvonnxparser's errors (the stand-in's, shaped as pyOnnx.cpp binds them): one part per error, naming the
    node; a file the parser cannot read records no error, only a log line, which is then the reason given."""
    attr = 'Assertion failed: dilations.nbDims == 2: Only 2D dilations are supported'
    fake_gpu.trt.parse_failure = [parser_error(41, "/block1/attn/conv_spatial/Conv", "Conv", desc=attr,
                                               code="UNSUPPORTED_NODE_ATTR"),
                                  parser_error(97, "/head/Gemm", "FusedGemm")]
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VanexportError) as e:
        build(b0_onnx_64, out / "m.plan")
    assert e.value.problem == (
        f"TensorRT 10.16.1.11 cannot parse {b0_onnx_64}: node 41 '/block1/attn/conv_spatial/Conv' (Conv): {attr} "
        "[UNSUPPORTED_NODE_ATTR]; node 97 '/head/Gemm' (FusedGemm): Assertion failed: creator && \"Plugin not found, "
        "are the plugin name, version, and namespace correct?\": Plugin not found, are the plugin name, version, "
        "and namespace correct? [UNSUPPORTED_NODE]")
    fake_gpu.trt.parse_failure = "unreadable"
    with pytest.raises(VanexportError) as e:
        build(b0_onnx_64, out / "m.plan")
    assert e.value.problem == (f"TensorRT 10.16.1.11 cannot parse {b0_onnx_64}: Failed to parse ONNX model from file: "
                               f"{b0_onnx_64}!")
    assert list(out.iterdir()) == [] and not builds(fake_gpu.trt)


@pytest.fixture
def orin(fake_gpu, monkeypatch):
    """A Jetson AGX Orin with JetPack 6 (TensorRT 10.3, two DLA cores)."""
    import sys

    fake_gpu.driver.devices[:] = [ORIN]
    trt = FakeTensorRT(fake_gpu.driver, version="10.3.0.30", same_cc=False, dla_cores=2)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return trt


def test_integrated_gpus_get_a_capped_workspace(b0_onnx_64, tmp_path, orin):
    r = build(b0_onnx_64, tmp_path / "m.plan")
    cap = default_workspace_bytes(True, available_memory_bytes())
    assert builds(orin)[0]["pools"] == {"WORKSPACE": cap} and r.manifest["build"]["workspace_bytes"] == cap
    assert r.manifest["gpu"]["integrated"] is True and any("workspace capped" in w for w in r.warnings)
    build(b0_onnx_64, tmp_path / "n.plan", BuildSettings(workspace_gib=2))
    assert builds(orin)[1]["pools"] == {"WORKSPACE": 2 * 2**30}  # --workspace wins


def test_no_hardware_compatibility_on_jetson(b0_onnx_64, tmp_path, orin):
    with pytest.raises(VanexportError, match="--hw-compat ampere\\+ is not supported on Jetson"):
        build(b0_onnx_64, tmp_path / "m.plan", BuildSettings(hw_compat="ampere+"))
    assert not builds(orin)


def test_same_cc_needs_tensorrt_10_9(b0_onnx_64, tmp_path, fake_gpu, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT(fake_gpu.driver, version="10.8.0.43", same_cc=False))
    with pytest.raises(VanexportError, match="has no --hw-compat same-cc .*came with TensorRT 10.9"):
        build(b0_onnx_64, tmp_path / "m.plan", BuildSettings(hw_compat="same-cc"))
    r = build(b0_onnx_64, tmp_path / "m.plan", BuildSettings(hw_compat="ampere+"))
    assert r.manifest["tensorrt"]["hardware_compatibility"] == "ampere+"


DLA = BuildSettings(precision="fp16", weak_typing=True, dla_core=1)


def test_a_dla_build(b0_onnx_64, tmp_path, orin):
    r = build(b0_onnx_64, tmp_path / "m.plan", DLA)
    (config,) = builds(orin)
    assert config["device_type"] == "DLA" and config["dla_core"] == 1
    assert {"GPU_FALLBACK", "FP16"} <= set(config["flags"])  # DLA runs FP16/INT8 only: the flag on 10.x
    assert config["profile"] == ((1, 3, 64, 64),) * 3  # static
    # one subgraph on the DLA, and only the copies to and from its memory on the GPU (tests/fixtures/tensorrt)
    assert r.manifest["build"]["placement"] == {"dla": 1, "gpu": 0} and r.manifest["tensorrt"]["dla_core"] == 1
    assert not any("layer(s) run on the GPU" in w for w in r.warnings)  # no fallback to report


def test_a_dla_build_where_nothing_lands_on_the_dla_is_refused(b0_onnx_64, tmp_path, orin, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    orin.dla_placement = False  # TensorRT fell back to the GPU for every layer, silently
    with pytest.raises(VanexportError, match="placed no layer on DLA core 1: all 4 layers fell back to the GPU"):
        build(b0_onnx_64, out / "m.plan", DLA)
    assert list(out.iterdir()) == []  # no plan, no manifest, no timing cache
    monkeypatch.setattr(FakeConfig, "dla_runnable", 0)
    n = len(builds(orin))
    with pytest.raises(VanexportError, match="no layer of this network can run on DLA core 1"):
        build(b0_onnx_64, out / "m.plan", DLA)
    assert len(builds(orin)) == n  # refused before the build


@pytest.mark.parametrize("where, message", [
    ("discrete", "is a discrete GPU: DLA cores are on Jetson modules"),
    ("no cores", r"no DLA core 1 \(this device has 0\)"),
    ("10.8", "TensorRT 10.8.0.43 has no DLA support"),
])
def test_where_there_is_no_dla(b0_onnx_64, tmp_path, fake_gpu, monkeypatch, where, message):
    import sys

    if where != "discrete":
        fake_gpu.driver.devices[:] = [ORIN]
    trt = FakeTensorRT(fake_gpu.driver, version="10.8.0.43" if where == "10.8" else "10.3.0.30", dla_cores=0)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    with pytest.raises(VanexportError, match=message):
        build(b0_onnx_64, tmp_path / "m.plan", DLA)
    assert not builds(trt) and not (tmp_path / "m.plan").exists()
