"""The bench worker's TensorRT lines: vanexport's plan runner (no PyTorch) and ONNX Runtime's TensorRT provider,
which must find TensorRT's libraries (imported first) and must not fall back unseen."""
import sys

import numpy as np
import pytest

from vanexport.bench import worker
from vanexport.errors import VanexportError


def test_the_tensorrt_row_pads_below_the_profile_minimum(tmp_path, make_manifest, fake_gpu):
    from stand_ins import expected_logits, plan_bytes

    from vanexport.formats.engine_manifest import manifest_path, write_manifest

    plan = tmp_path / "m.plan"
    plan.write_bytes(plan_bytes(profile=((4, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8))))
    write_manifest(make_manifest(plan), manifest_path(plan))
    runner = worker.TensorRTRunner({"model": str(plan)})
    x = np.random.default_rng(0).normal(size=(1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(runner.host(x), expected_logits(x), rtol=1e-6)
    x5 = np.concatenate([x] * 5)  # within the profile: not padded
    assert runner.host(x5).shape == (5, 10)


class Session:
    """ONNX Runtime as the runner sees it: the providers it asked for, and those that really started."""

    created = []

    def __init__(self, model, providers, threads=None, started=None):
        self.asked = providers
        self.providers = started or [p if isinstance(p, str) else p[0] for p in providers]
        Session.created.append((sys.modules.get("tensorrt"), providers))


def _spec(tmp_path):
    return {"model": "m.onnx", "threads": None, "cache_dir": str(tmp_path),
            "target": {"provider": "TensorrtExecutionProvider", "device": "cuda"}}


def test_tensorrt_is_imported_before_the_session(tmp_path, fake_gpu, monkeypatch):
    import vanexport.runtime.onnxruntime_backend as ort_backend

    Session.created = []
    monkeypatch.setattr(ort_backend, "OnnxRuntimeBackend", Session)
    runner = worker.OnnxRuntimeRunner(_spec(tmp_path))
    (trt_module, providers), = Session.created
    assert trt_module is fake_gpu.trt  # loaded when the session was made
    assert providers[0][0] == "TensorrtExecutionProvider" and providers[0][1]["trt_engine_cache_path"] == str(tmp_path)
    assert runner.backend.providers[0] == "TensorrtExecutionProvider"


def test_a_silent_fallback_to_cuda_fails_the_row(tmp_path, fake_gpu, monkeypatch):
    import vanexport.runtime.onnxruntime_backend as ort_backend

    monkeypatch.setattr(ort_backend, "OnnxRuntimeBackend",
                        lambda model, providers, threads=None: Session(model, providers, threads,
                                                                       ["CUDAExecutionProvider", "CPUExecutionProvider"]))
    with pytest.raises(RuntimeError, match="fell back to CUDAExecutionProvider instead of TensorrtExecutionProvider"):
        worker.OnnxRuntimeRunner(_spec(tmp_path))


def test_without_tensorrt_the_provider_row_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` fails
    with pytest.raises(VanexportError, match="TensorRT is not installed"):
        worker.OnnxRuntimeRunner(_spec(tmp_path))


def test_a_provider_built_for_another_tensorrt_major_fails_the_row_saying_why(tmp_path, fake_gpu, monkeypatch):
    """TensorRT 11 installed, onnxruntime-gpu's TensorRT provider linking libnvinfer.so.10: no session is tried."""
    import vanexport.runtime.onnxruntime_backend as ort_backend
    from vanexport import machine

    Session.created = []
    monkeypatch.setattr(ort_backend, "OnnxRuntimeBackend", Session)
    monkeypatch.setattr(machine, "gpu_stack_facts", lambda: machine.GpuStackFacts(
        "11.4.0.106", "1.31.1", ("libnvinfer.so.10", "libnvonnxparser.so.10", "libcudart.so.13")))
    with pytest.raises(RuntimeError, match=r"TensorRT provider needs libnvinfer.so.10 \(TensorRT 10\) but TensorRT "
                                           r"11.4.0.106 is installed"):
        worker.OnnxRuntimeRunner(_spec(tmp_path))
    assert Session.created == []
