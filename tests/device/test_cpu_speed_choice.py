"""The CPU way chosen by the time it took on this machine (select.by_measured_speed, device/speed.py), with the times
given by the test (a stand-in clock and stand-in backends): no timing is asserted, only what is done with times."""
import json

import numpy as np
import pytest

from vanexport.device import speed
from vanexport.device.select import Candidate, Device, by_measured_speed, choose, speed_key

FP32 = Candidate("onnx", "/b/onnx/m_fp32.onnx", "fp32", None, True)
INT8_TRT = Candidate("onnx", "/b/onnx/m_int8.onnx", "int8", None, True)
INT8_CPU = Candidate("onnx", "/b/onnx/m_int8_cpu.onnx", "int8", None, True)
CPU_BOX = Device(ort_providers=("CPUExecutionProvider",), openvino="2026.4.1")


def ways(choices):
    return [(c.backend, c.candidate.path.rsplit("/", 1)[1]) for c in choices]


def times(choices, table):
    """{speed_key: ms} from {(backend, file name): ms}."""
    return {speed_key(c): table[(c.backend, c.candidate.path.rsplit("/", 1)[1])]
            for c in choices if (c.backend, c.candidate.path.rsplit("/", 1)[1]) in table}


def test_fastest_measured_way_leads_whatever_the_fixed_order():
    choices = choose([FP32], CPU_BOX)
    assert ways(choices)[0] == ("onnxruntime-cpu", "m_fp32.onnx")  # the fixed order, before any time
    ordered = by_measured_speed(choices, times(choices, {("onnxruntime-cpu", "m_fp32.onnx"): 9.6,
                                                         ("openvino", "m_fp32.onnx"): 8.6}))
    assert ways(ordered) == [("openvino", "m_fp32.onnx"), ("onnxruntime-cpu", "m_fp32.onnx")]
    assert "8.60 ms" in ordered[0].reason and "9.60 ms" in ordered[0].reason


def test_int8_slower_than_fp32_on_its_backend_is_never_chosen():
    choices = choose([FP32, INT8_TRT, INT8_CPU], CPU_BOX)
    table = {("onnxruntime-cpu", "m_fp32.onnx"): 9.6, ("onnxruntime-cpu", "m_int8.onnx"): 30.8,
             ("onnxruntime-cpu", "m_int8_cpu.onnx"): 9.7,  # slower than FP32 by a hair: still out
             ("openvino", "m_fp32.onnx"): 8.6, ("openvino", "m_int8.onnx"): 5.6, ("openvino", "m_int8_cpu.onnx"): 3.9}
    ordered = by_measured_speed(choices, times(choices, table))
    assert ways(ordered) == [("openvino", "m_int8_cpu.onnx"), ("openvino", "m_int8.onnx"),
                             ("openvino", "m_fp32.onnx"), ("onnxruntime-cpu", "m_fp32.onnx")]
    dropped = ordered[0].skipped
    assert any(s.startswith("m_int8.onnx on onnxruntime-cpu: INT8 measured 30.80 ms") for s in dropped)
    assert any(s.startswith("m_int8_cpu.onnx on onnxruntime-cpu") for s in dropped)


def test_int8_faster_than_fp32_on_one_backend_is_kept_even_when_slower_than_another_backends_fp32():
    choices = choose([FP32, INT8_CPU], CPU_BOX)
    table = {("onnxruntime-cpu", "m_fp32.onnx"): 5.0, ("onnxruntime-cpu", "m_int8_cpu.onnx"): 20.0,
             ("openvino", "m_fp32.onnx"): 12.0, ("openvino", "m_int8_cpu.onnx"): 7.0}
    ordered = by_measured_speed(choices, times(choices, table))
    assert ways(ordered) == [("onnxruntime-cpu", "m_fp32.onnx"), ("openvino", "m_int8_cpu.onnx"),
                             ("openvino", "m_fp32.onnx")]


def test_forced_precision_and_backend_still_limit_the_ways():
    choices = choose([FP32, INT8_CPU], CPU_BOX, backend="onnxruntime-cpu", precision="int8")
    ordered = by_measured_speed(choices, times(choices, {("onnxruntime-cpu", "m_int8_cpu.onnx"): 50.0}))
    assert ways(ordered) == [("onnxruntime-cpu", "m_int8_cpu.onnx")]  # no FP32 way to compare with: forced


def test_gpu_ways_keep_their_place_and_untimed_cpu_ways_follow_timed_ones():
    gpu_box = Device(ort_providers=("CUDAExecutionProvider", "CPUExecutionProvider"), openvino="2026.4.1")
    choices = choose([FP32], gpu_box)
    table = {("openvino", "m_fp32.onnx"): 3.0}
    ordered = by_measured_speed(choices, times(choices, table))
    assert ways(ordered) == [("onnxruntime-cuda", "m_fp32.onnx"), ("openvino", "m_fp32.onnx"),
                             ("onnxruntime-cpu", "m_fp32.onnx")]


class Clock:
    """A stand-in perf_counter: every call to a stand-in backend advances it by that backend's cost."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeBackend:
    def __init__(self, clock, costs_ms):
        self.clock, self.costs, self.calls = clock, list(costs_ms), 0

    def __call__(self, x):
        self.clock.now += self.costs[self.calls % len(self.costs)] / 1e3
        self.calls += 1


def test_measure_times_each_cpu_way_once_and_caches_it_per_file(tmp_path):
    clock = Clock()
    costs = {"onnxruntime-cpu": [10.0, 12.0, 11.0], "openvino": [4.0, 6.0, 5.0, 100.0]}
    started = []

    def start(choice):
        started.append(choice.backend)
        return FakeBackend(clock, costs[choice.backend])

    cache = speed.SpeedCache(tmp_path, key="machine1")
    choices = choose([FP32], CPU_BOX)
    shas = {FP32.path: "a" * 64}
    ms, notes = speed.measure(choices, start, lambda b: np.zeros((1, 3, 8, 8), np.float32), cache=cache,
                              sha256_of=shas.__getitem__, clock=clock)
    # the median of the 10 timed calls after 3 warm-ups, computed here from the cost cycle
    expected = {b: float(np.median([c[i % len(c)] for i in range(speed.WARMUP_CALLS,
                                                                  speed.WARMUP_CALLS + speed.TIMED_CALLS)]))
                for b, c in costs.items()}
    assert ms == {speed_key(c): pytest.approx(expected[c.backend]) for c in choices}
    assert notes == [] and started == ["onnxruntime-cpu", "openvino"]
    saved = json.loads((tmp_path / "machine1.json").read_text())
    assert saved["ms"][f"{'a' * 64}:openvino:fp32:bs1"] == pytest.approx(expected["openvino"])

    again, _ = speed.measure(choices, start, None, cache=speed.SpeedCache(tmp_path, key="machine1"),
                             sha256_of=shas.__getitem__, clock=clock)
    assert again == ms and started == ["onnxruntime-cpu", "openvino"]  # read back, nothing started

    other_file = {FP32.path: "b" * 64}
    speed.measure(choices, start, lambda b: None, cache=speed.SpeedCache(tmp_path, key="machine1"),
                  sha256_of=other_file.__getitem__, clock=clock)
    assert len(started) == 4  # another file (sha256) is timed afresh
    speed.measure(choices, start, lambda b: None, cache=speed.SpeedCache(tmp_path, key="machine2"),
                  sha256_of=shas.__getitem__, clock=clock)
    assert len(started) == 6  # and so is the same file on another machine


def test_a_way_that_fails_to_start_is_not_timed(tmp_path):
    from vanexport.errors import VanexportError

    def start(choice):
        if choice.backend == "openvino":
            raise VanexportError("OpenVINO cannot compile it")
        return FakeBackend(clock, [2.0])

    clock = Clock()
    choices = choose([FP32], CPU_BOX)
    ms, notes = speed.measure(choices, start, lambda b: None, cache=speed.SpeedCache(tmp_path, key="m"),
                              sha256_of=lambda p: "c" * 64, clock=clock)
    assert list(ms.values()) == [pytest.approx(2.0)]
    assert notes == ["openvino on m_fp32.onnx: not timed (OpenVINO cannot compile it)"]


def test_a_damaged_cache_counts_as_empty(tmp_path):
    (tmp_path / "m.json").write_text("{not json")
    assert speed.SpeedCache(tmp_path, key="m").times == {}
    (tmp_path / "m.json").write_text(json.dumps({"schema": "other/1", "ms": {"x": 1.0}}))
    assert speed.SpeedCache(tmp_path, key="m").times == {}


def test_machine_key_follows_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(speed, "_cpuinfo_fields", lambda: {"model": "Xeon", "flags": ["avx512_vnni", "amx_int8"]})
    amx = speed.machine_key()
    monkeypatch.setattr(speed, "_cpuinfo_fields", lambda: {"model": "Xeon", "flags": ["avx2"]})
    assert speed.machine_key() != amx
    monkeypatch.setattr(speed, "_cpuinfo_fields", lambda: {"model": "Xeon", "flags": ["avx512_vnni", "amx_int8"]})
    assert speed.machine_key() == amx
