"""benchmarks/smoke_gpu.py (`make smoke-gpu`) without a GPU: it says so and writes nothing; with a GPU and no TensorRT:
the CUDA lines run and the TensorRT lines are skipped with the reason; and, with the CUDA and
TensorRT stand-ins, every line runs and is recorded, a failing one with its error, without stopping the others
(the stand-in engine is not VAN, so the lines that compare with PyTorch fail, as they must)."""
import json
import sys
from pathlib import Path

import pytest
from image_folders import class_subset
from modules import benchmark

from vanexport.machine import gpus


@pytest.mark.skipif(bool(gpus()), reason="this machine has an NVIDIA GPU")
def test_without_a_gpu_it_says_so_and_writes_nothing(tmp_path, capsys):
    assert benchmark("smoke_gpu").main(["-o", str(tmp_path / "r.json")]) == 0
    assert capsys.readouterr().out.startswith("skipped: needs an NVIDIA GPU: no NVIDIA driver")
    assert not (tmp_path / "r.json").exists()


def test_with_a_gpu_and_no_tensorrt_the_cuda_lines_run_and_the_tensorrt_lines_say_why_not(tmp_path, fake_gpu,
                                                                                          monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` fails
    out = tmp_path / "r.json"
    assert benchmark("smoke_gpu").main(["-o", str(out)]) == 0
    report = json.loads(out.read_text())
    steps = report["steps"]
    assert report["tensorrt"] is None and len(steps) == 16
    cuda_lines = {s["name"]: s for s in steps[:3]}
    view = cuda_lines["the GPUs through the CUDA driver API, as PyTorch sees them"]
    assert view["status"] == "ok" and view["details"]["gpus"][0]["name"] == "NVIDIA A10"
    memory = cuda_lines["device memory, a stream and copies through libcuda (runtime/cuda.py)"]
    assert memory["status"] == "ok" and memory["details"]["bytes"] == 64 << 20
    assert not fake_gpu.driver.memory and not fake_gpu.driver.streams  # freed
    assert [s["status"] for s in steps[3:]] == ["skipped"] * 13
    assert {s["reason"] for s in steps[3:]} == {"TensorRT is not installed"}


@pytest.mark.slow
def test_every_line_is_recorded(digits, tmp_path, fake_gpu, monkeypatch):
    out = tmp_path / "r.json"
    monkeypatch.setattr(sys, "argv", ["smoke_gpu.py"])
    args = ["-o", str(out), "--digits", str(_small_copy(digits, tmp_path)), "--bench-seconds", "0.1"]
    assert benchmark("smoke_gpu").main(args) == 1
    report = json.loads(out.read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert len(steps) == 16 and report["tensorrt"] == "10.16.1.11" and report["gpus"][0]["name"] == "NVIDIA A10"
    assert all(s["status"] in ("ok", "failed", "skipped") for s in steps.values())
    assert all(s.get("error") for s in steps.values() if s["status"] == "failed")
    assert steps["prepare the trained digits VAN-b0"]["status"] == "ok"
    assert "does not match PyTorch" in steps["strongly typed FP32, FP16, INT8 builds validated against PyTorch"]["error"]
    dla = steps["DLA: refused on a discrete GPU (built on a Jetson)"]
    assert dla["status"] == "ok" and "discrete GPU" in dla["details"]["refused"]
    assert steps["--device 1: built and run on the second GPU"] == {**steps["--device 1: built and run on the second "
                                                                            "GPU"], "status": "skipped",
                                                                      "reason": "one GPU"}
    assert steps["a foreign timing cache and a corrupt one"]["status"] == "ok"
    assert report["summary"]["failed"] >= 1


def _small_copy(digits, tmp_path: Path, per_class: int = 3) -> Path:
    """The digits folder with a few images per class: what is checked here is the recording, not the figures."""
    import shutil

    root = tmp_path / "digits"
    root.mkdir()
    shutil.copy(digits.onnx, root / Path(digits.onnx).name)
    class_subset(digits.calib_dir, root / "calib", per_class)
    class_subset(digits.heldout_dir, root / "heldout", per_class)
    return root
