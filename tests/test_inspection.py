"""`vanexport inspect` on ONNX files (plans: see test_trt_environment.py and tests/gpu)."""
import collections
import json

import onnx
import pytest
from click.testing import CliRunner

from vanexport.cli import cli
from vanexport.errors import VanexportError
from vanexport.inspection import inspect_file


@pytest.fixture(scope="module")
def b0_onnx(tmp_path_factory):
    from vanexport.export.onnx import export_onnx

    path = tmp_path_factory.mktemp("inspect") / "van_b0_224.onnx"
    export_onnx("b0", output=path, validate=False)
    return path


def test_onnx_report(b0_onnx, b0):
    d = inspect_file(b0_onnx).details
    assert d["inputs"] == [{"name": "input", "dtype": "float32", "shape": ["batch", 3, 224, 224]}]
    assert d["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 1000]}]
    assert d["opsets"] == {"ai.onnx": 17} and d["producer"].startswith("vanexport")
    graph = onnx.load(str(b0_onnx)).graph
    assert d["op_histogram"] == dict(collections.Counter(n.op_type for n in graph.node))
    assert d["nodes"] == len(graph.node) and d["op_histogram"]["LayerNormalization"] == 4
    # weights in initializers and Constant nodes together are the model's parameters (+ BatchNorm statistics,
    # minus what constant folding merged): within 1 % of PyTorch's count
    model = b0[0]
    torch_params = sum(p.numel() for p in model.parameters())
    assert abs(d["parameters"] - torch_params) / torch_params < 0.01
    assert d["metadata"]["variant"] == "b0" and d["metadata"]["input_shape"] == ["batch", 3, 224, 224]


def test_inspect_command(b0_onnx):
    r = CliRunner().invoke(cli, ["inspect", str(b0_onnx), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["kind"] == "onnx"
    r = CliRunner().invoke(cli, ["inspect", str(b0_onnx)])
    assert r.exit_code == 0 and "input 'input' float32 batchx3x224x224" in r.stdout and "LayerNormalization 4" in r.stdout


@pytest.mark.parametrize("name, content, message", [
    ("missing.onnx", None, "'{tmp}/missing.onnx' not found"),
    ("notes.txt", b"hello", "cannot inspect 'notes.txt'"),
    ("junk.onnx", b"\x00\x01junk", "is not a readable ONNX file"),
])
def test_inspect_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VanexportError, match=message.format(tmp=tmp_path)):
        inspect_file(path)
    r = CliRunner().invoke(cli, ["inspect", str(path)])
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


def test_inspect_a_bundle_without_unpacking_it(b0_bundle, tmp_path, make_manifest, monkeypatch):
    """The main output: manifest summary, files, models with their fidelity, engines with their manifests."""
    from vanexport.ship.bundle import add_engine_to_bundle

    src, _ = b0_bundle
    bundle = tmp_path / "b.tar.gz"
    bundle.write_bytes(src.read_bytes())
    plan = tmp_path / "van_b0_64_fp32.plan"
    plan.write_bytes(b"a serialized engine")
    from vanexport.device.archive import read_bundle
    from vanexport.machine import GpuInfo

    manifest = make_manifest(plan, gpu=GpuInfo("Orin", "8.7"), source_sha=read_bundle(bundle)["models"][0]["sha256"])
    (tmp_path / "van_b0_64_fp32.manifest.json").write_text(json.dumps(manifest.to_dict()))
    add_engine_to_bundle(bundle, plan)
    monkeypatch.setenv("VANEXPORT_CACHE", str(tmp_path / "cache"))

    report = inspect_file(bundle)
    d = report.details
    assert report.kind == "bundle" and d["variant"] == "b0" and d["num_classes"] == 1000 and d["verified"]
    assert set(d["files"]) >= {"README.txt", "labels.txt", "onnx/van_b0_64_fp32.onnx", "engines/van_b0_64_fp32.plan"}
    assert d["models"][0]["validation"]["passed"] and d["models"][0]["precision"] == "fp32"
    engine, = d["engines"]
    assert engine["entry"]["gpu_name"] == "Orin" and engine["manifest"]["tensorrt"]["version"] == "10.16.1.11"
    assert any("random weights" in n for n in report.notes)
    assert not (tmp_path / "cache").exists()  # nothing was unpacked
    r = CliRunner().invoke(cli, ["inspect", str(bundle)])
    assert r.exit_code == 0, r.output
    assert "VAN-b0, 1000 classes; bundle schema 1" in r.stdout and "PASS vs FP32 PyTorch" in r.stdout
    assert "engines/van_b0_64_fp32.plan (from onnx/van_b0_64_fp32.onnx)" in r.stdout and "built on Orin" in r.stdout

    tampered = tmp_path / "t.tar.gz"  # a bundle that fails its checks is refused with one line, as by unpack
    tampered.write_bytes(bundle.read_bytes()[:-200])
    r = CliRunner().invoke(cli, ["inspect", str(tampered)])
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
