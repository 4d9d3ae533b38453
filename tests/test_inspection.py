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
