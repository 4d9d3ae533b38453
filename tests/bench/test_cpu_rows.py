"""`bench`'s CPU rows: every CPU form is a row, each row's floor comes from the MatMul peak of its own runtime and
precision (INT8 rows: an INT8 peak), and the INT8 peak's model really is an INT8 MatMul."""
import numpy as np
import pytest

from vanexport.bench import cases, floor, run


def _target(label):
    return next(t for t in cases.TARGETS if t.label == label)


def test_every_cpu_form_is_a_row_with_its_own_file():
    cpu = [t for t in cases.TARGETS if t.device == "cpu" and t.backend in ("onnxruntime", "openvino")]
    assert {(t.backend, t.precision, t.file_precision) for t in cpu} == {
        ("onnxruntime", "fp32", "fp32"), ("onnxruntime", "fp16", "fp16"), ("onnxruntime", "int8", "int8"),
        ("onnxruntime", "int8", "int8_cpu"), ("openvino", "fp32", "fp32"), ("openvino", "bf16", "fp32"),
        ("openvino", "int8", "int8"), ("openvino", "int8", "int8_cpu")}
    assert _target("openvino cpu int8-cpu").form == "cpu" and _target("openvino cpu int8").form is None


def test_the_cpu_int8_rows_need_nncf_and_calibration(monkeypatch):
    box = cases.Machine(0, ["CPUExecutionProvider"], openvino=["fp32", "bf16", "int8"])
    row = _target("openvino cpu int8-cpu")
    assert cases.skip_reason(row, box, None) == "INT8 needs calibration images: pass --calib DIR"
    monkeypatch.setattr(cases, "_importable", lambda m: m != "nncf")
    assert "pip install 'vanexport[cpu-int8]'" in cases.skip_reason(row, box, "calib/")
    assert cases.skip_reason(_target("openvino cpu int8"), box, "calib/") is None  # the TensorRT file needs no NNCF


def _row(backend, precision, p50, batch=1, label=None, device="cpu"):
    return {"backend": backend, "precision": precision, "device": device, "batch": batch, "model_file": "m.onnx",
            "latency_ms": {"p50": p50}, "floor": None, "label": label or f"{backend} {precision}"}


def test_each_row_is_held_to_the_peak_of_its_own_runtime_and_precision(monkeypatch, tmp_path):
    peaks = {("onnxruntime", "fp32"): 200.0, ("onnxruntime", "int8"): 800.0, ("openvino", "fp32"): 180.0,
             ("openvino", "bf16"): 500.0, ("openvino", "int8"): 1000.0}
    asked = []

    def peak_of(runtime, precision):
        asked.append((runtime, precision))
        return peaks[(runtime, precision)]

    monkeypatch.setattr(run, "_gmacs", lambda path: 0.5)
    rows = [_row("onnxruntime", "fp32", 10.0), _row("onnxruntime", "int8", 40.0), _row("openvino", "fp32", 9.0),
            _row("openvino", "bf16", 6.0), _row("openvino", "int8", 5.0, batch=8), _row("openvino", "int8", 4.0),
            _row("onnxruntime", "fp16", 14.0), _row("tensorrt", "int8", 1.0, device="cuda")]
    run._add_floors(rows, tmp_path, None, peak_of=peak_of)
    for r in rows[:6]:
        peak = peaks[(r["backend"], r["precision"])]
        floor_ms = 2 * 0.5 * r["batch"] / peak * 1e3  # GMAC x 2 FLOP x batch / (GFLOP/s), in ms
        assert r["floor"]["peak_gflops"] == peak
        assert r["floor"]["compute_floor_ms"] == pytest.approx(floor_ms)
        assert r["floor"]["share"] == pytest.approx(floor_ms / r["latency_ms"]["p50"])
    assert rows[6]["floor"] is None and rows[7]["floor"] is None  # FP16 on a CPU is emulated; GPUs have no floor
    assert sorted(asked) == sorted(peaks)  # one measurement per runtime and precision


def test_the_int8_peak_model_computes_a_quantized_matmul():
    """Its output is the product of the quantized operands, as numpy computes it: it is INT8 arithmetic (to the
    rounding of the activations), not an FP32 MatMul of the originals."""
    from vanexport.runtime.onnxruntime_backend import make_session

    n = 64
    model = floor._matmul_model(n, int8=True)
    weights = {t.name: t for t in model.graph.initializer}
    from onnx import numpy_helper

    bq, s, sa = (numpy_helper.to_array(weights[k]) for k in ("bq", "s", "sa"))
    a = np.random.default_rng(3).standard_normal((n, n), dtype=np.float32)
    aq = np.clip(np.round(a / sa) + 128, 0, 255) - 128  # uint8 with zero point 128, dequantized
    expected = (aq.astype(np.int64) @ bq.astype(np.int64)) * (float(sa) * float(s))
    got = make_session(model).run(None, {"a": a})[0]
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-3)
    assert not np.allclose(got, a @ (bq * s), rtol=1e-3, atol=1e-3)  # not the unquantized product


def test_peaks_measure_something():
    assert floor.matmul_peak("onnxruntime", "int8", n=128, repeats=2) > 0.1
    pytest.importorskip("openvino")
    assert floor.matmul_peak("openvino", "int8", n=128, repeats=2) > 0.1
