"""The one place ONNX Runtime sessions are made sets every option on purpose (docs/benchmarks.md)."""
import onnxruntime as ort
import pytest

from vanexport.errors import VanexportError
from vanexport.runtime.onnxruntime_backend import make_session


def test_latency_options_by_default(b0_onnx_64):
    opts = make_session(b0_onnx_64).get_session_options()
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # NCHWc layouts
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert opts.intra_op_num_threads == 0  # one per physical core, ONNX Runtime's own choice
    with pytest.raises(RuntimeError, match="does not have configuration"):  # spinning: ONNX Runtime's default, on
        opts.get_session_config_entry("session.intra_op.allow_spinning")


def test_shared_work_lets_idle_threads_sleep(b0_onnx_64):
    opts = make_session(b0_onnx_64, threads=1, spinning=False).get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.intra_op_num_threads == 1
    assert make_session(b0_onnx_64, spinning=True).get_session_options().get_session_config_entry(
        "session.intra_op.allow_spinning") == "1"


def test_an_unloadable_model_is_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    with pytest.raises(VanexportError, match="ONNX Runtime cannot load") as e:
        make_session(bad)
    assert "\n" not in e.value.problem


def test_cuda_sessions_preload_the_cuda_libraries_and_keep_stdout_clean(b0_onnx_64, monkeypatch, capsys):
    import types

    from vanexport.runtime import onnxruntime_backend

    calls = []
    ort = types.SimpleNamespace(preload_dlls=lambda: (calls.append(1), print("Failed to load libcudnn.so.9")))
    onnxruntime_backend.preload_cuda_libraries(ort)
    out = capsys.readouterr()
    assert calls == [1] and out.out == "" and "libcudnn.so.9" in out.err
    onnxruntime_backend.preload_cuda_libraries(types.SimpleNamespace())  # a wheel without preload_dlls

    seen = []
    monkeypatch.setattr(onnxruntime_backend, "preload_cuda_libraries", lambda mod: seen.append(mod.__name__))
    make_session(b0_onnx_64)
    assert seen == []  # the CPU provider needs no CUDA library
    make_session(b0_onnx_64, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert seen == ["onnxruntime"]
