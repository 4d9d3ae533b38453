"""vanexport turns ONNX Runtime's telemetry off: a run writes nothing under HOME or TMPDIR (docs/security.md)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUN_A_SESSION = """
import numpy as np
from onnx import TensorProto, helper
{first}
import onnxruntime as ort

graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
    None, {{"x": np.ones(1, np.float32)}})
"""


def written(tmp_path: Path, first: str, extra_env: dict) -> list[str]:
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir(parents=True)
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(home), TMPDIR=str(tmp), **extra_env)
    subprocess.run([sys.executable, "-c", RUN_A_SESSION.format(first=first)], env=env, check=True, timeout=120)
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())


def test_importing_vanexport_first_keeps_onnx_runtime_from_writing_telemetry(tmp_path):
    assert written(tmp_path, "import vanexport", {}) == []


def test_the_control_onnx_runtime_alone_writes_its_telemetry(tmp_path):
    """Without vanexport (or when the user turns it on) ONNX Runtime writes its files: the test above can fail."""
    files = written(tmp_path, "", {})
    if not files:
        pytest.skip("this ONNX Runtime writes no telemetry files here")
    assert any(".onnxruntime" in f or f.endswith(".ses") for f in files), files
    assert written(tmp_path / "on", "import vanexport", {"ORT_DISABLE_TELEMETRY": "0"}) != []
