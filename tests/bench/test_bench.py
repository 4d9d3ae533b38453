import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from vanexport.bench import cases, floor, output, run, stats, worker
from vanexport.bench.artifacts import Artifacts, Skipped
from vanexport.cli import cli


# --- statistics ------------------------------------------------------------------------------------------

def test_percentiles_and_moments_on_known_samples():
    s = stats.summarize(np.arange(1, 101)[::-1], batch=4)  # order must not matter
    # linear interpolation on 1..100: the p-th percentile is 1 + 99 p / 100
    assert (s["p50"], s["p90"], s["p99"]) == pytest.approx((50.5, 90.1, 99.01))
    assert (s["min"], s["max"], s["mean"], s["n"]) == (1, 100, 50.5, 100)
    assert s["std"] == pytest.approx((100 * 101 / 12) ** 0.5)  # sample std of 1..n is sqrt(n(n+1)/12)
    assert s["images_per_s"] == pytest.approx(4 * 1000 / 50.5)
    assert s["spread"] == pytest.approx((90.1 - 10.9) / 50.5) and s["unstable"]


def test_stable_and_unstable_runs():
    steady = stats.summarize([10.0] * 50 + [10.5] * 50, batch=1)
    assert not steady["unstable"] and steady["spread"] == pytest.approx(0.5 / 10.25)  # median 10.25
    busy = stats.summarize([10.0] * 50 + [20.0] * 50, batch=1)  # half the calls were slowed down
    assert busy["unstable"]
    assert stats.summarize([3.0], batch=1)["std"] == 0.0
    for bad in ([], [1.0, -1.0], [1.0, float("nan")]):
        with pytest.raises(ValueError):
            stats.summarize(bad, batch=1)


def test_timed_loop_rotates_inputs_and_stops():
    seen = []
    samples = worker.timed_loop(lambda i: seen.append(i) or 1.0, n_pool=3, iters=7, seconds=None)
    assert seen == [0, 1, 2, 0, 1, 2, 0] and samples == [1.0] * 7
    seen.clear()
    worker.timed_loop(lambda i: seen.append(i) or 1.0, n_pool=2, iters=None, seconds=0.0)
    assert len(seen) == worker.MIN_ITERS  # a time budget still gives a minimum of samples


def test_worker_reports_its_own_peak_memory_not_its_parents():
    # ru_maxrss is inherited through fork/exec on Linux; the child must not report the parent's 300 MiB.
    big = np.ones(300 * 2**20 // 8)
    code = "from vanexport.bench.worker import peak_rss_mib; print(peak_rss_mib())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run._child_env(), check=True)
    assert 5 < float(out.stdout) < 200
    assert big.sum() > 0


# --- what can run where ------------------------------------------------------------------------------------

def test_plan_filters_and_orders_cases():
    plan = cases.plan_cases(["b0", "b1"], [1, 8], ["onnxruntime"], ["fp32"], "cpu")
    assert [(c.variant, c.batch, c.target.label) for c in plan] == [
        ("b0", 1, "onnxruntime cpu fp32"), ("b0", 8, "onnxruntime cpu fp32"),
        ("b1", 1, "onnxruntime cpu fp32"), ("b1", 8, "onnxruntime cpu fp32")]
    everything = cases.plan_cases(["b0"], [1], None, None, None)
    assert len(everything) == len(cases.TARGETS) == 20
    assert not any(c.target.backend == "torch" and c.target.precision == "int8" for c in everything)
    with pytest.raises(run.VanexportError, match="no benchmark matches"):
        cases.plan_cases(["b0"], [1], ["torch"], ["int8"], None)
    with pytest.raises(run.VanexportError, match="BF16 only OpenVINO"):
        cases.plan_cases(["b0"], [1], ["onnxruntime"], ["bf16"], None)


def test_openvino_rows_run_the_fp32_file():
    """OpenVINO's BF16 is a way to run the FP32 file, not a file of its own: both rows need only the FP32 ONNX (the
    INT8 rows run the two INT8 files)."""
    plan = cases.plan_cases(["b0"], [1], ["openvino"], None, None)
    assert [c.target.label for c in plan] == ["openvino cpu fp32", "openvino cpu bf16", "openvino cpu int8",
                                              "openvino cpu int8-cpu"]
    assert [(c.target.artifact, c.target.file_precision) for c in plan] == [
        ("onnx", "fp32"), ("onnx", "fp32"), ("onnx", "int8"), ("onnx", "int8_cpu")]
    assert _target("onnxruntime cpu fp16").file_precision == "fp16"
    assert [c.target.label for c in cases.plan_cases(["b0"], [1], None, ["bf16"], None)] == ["openvino cpu bf16"]


def test_backend_and_precision_names():
    assert cases.parse_list(["torch,ort", "trt", "ORT", "ov"], cases.BACKEND_ALIASES, "backend") == \
        ["torch", "onnxruntime", "tensorrt", "openvino"]
    assert cases.parse_list("fp16, fp32", cases.PRECISIONS, "precision") == ["fp16", "fp32"]
    with pytest.raises(run.VanexportError, match="unknown backend 'tflite'"):
        cases.parse_list(["torch,tflite"], cases.BACKEND_ALIASES, "backend")


def _target(label):
    return next(t for t in cases.TARGETS if t.label == label)


def test_unavailable_backends_are_skipped_with_a_reason():
    cpu_only = cases.Machine(cuda_devices=0, ort_providers=["CPUExecutionProvider"])
    gpu_no_ep = cases.Machine(cuda_devices=1, ort_providers=["CPUExecutionProvider"])
    full = cases.Machine(1, ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], True,
                         openvino=["fp32", "bf16", "int8"])
    reason = cases.skip_reason
    assert reason(_target("torch cpu fp32"), cpu_only, None) is None
    assert reason(_target("onnxruntime cpu fp32"), cpu_only, None) is None
    assert reason(_target("torch cuda fp16"), cpu_only, None) == "no CUDA GPU on this machine"
    assert "no CUDAExecutionProvider" in reason(_target("onnxruntime cuda fp32"), gpu_no_ep, None)
    assert "onnxruntime-gpu" in reason(_target("onnxruntime trt-ep fp16"), gpu_no_ep, None)
    assert "TensorRT is not installed" in reason(_target("tensorrt cuda fp16"), gpu_no_ep, None)
    assert reason(_target("onnxruntime cpu int8"), cpu_only, None) == "INT8 needs calibration images: pass --calib DIR"
    assert reason(_target("onnxruntime cpu int8"), cpu_only, "calib/") is None
    assert "pip install 'vanexport[openvino]'" in reason(_target("openvino cpu fp32"), cpu_only, None)
    avx2 = cases.Machine(0, ["CPUExecutionProvider"], openvino=["fp32", "int8"])  # OpenVINO, but no BF16 in the CPU
    assert reason(_target("openvino cpu fp32"), avx2, None) is None
    assert reason(_target("openvino cpu bf16"), avx2, None) == \
        "this CPU has no native BF16 (OpenVINO computes in FP32, INT8)"
    assert all(reason(t, full, "calib/") is None for t in cases.TARGETS)


def test_rows_that_cannot_have_their_file_skip_with_a_reason_and_make_nothing(tmp_path):
    from vanexport.pipeline import ModelSource

    arts = Artifacts(tmp_path, ModelSource("b0"), img_size=64)
    with pytest.raises(Skipped, match="INT8 needs calibration images"):
        arts.get("onnx", "int8")
    with pytest.raises(Skipped, match="INT8 needs calibration images"):  # remembered, not retried
        arts.get("plan", "int8")
    assert not list(tmp_path.iterdir())  # nothing was exported for rows that cannot run


# --- fidelity and speed-up ---------------------------------------------------------------------------------

def test_fidelity_verdicts_per_precision():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 3, (4, 2, 10)).astype(np.float32)
    m, failures = run._fidelity(ref + 1e-6, ref, "fp32", "cpu")
    assert not failures and m["top1_agree"] == 1.0 and m["n"] == 8
    m, failures = run._fidelity(ref + 1e-2, ref, "fp32", "cpu")
    assert failures and "atol" in failures[0]
    m, failures = run._fidelity(ref + 1e-2, ref, "fp16", "cpu")  # FP16 is judged on agreement, not 1e-4
    assert not failures
    assert not run._fidelity(ref * 1.001 + 1e-2, ref, "bf16", "cpu")[1]  # BF16 too, a decade looser on cosine
    assert any("cosine" in f for f in run._fidelity(ref + rng.normal(0, 0.3, ref.shape), ref, "bf16", "cpu")[1])
    flipped = ref.copy()
    flipped[0, 0] = -flipped[0, 0]
    m, failures = run._fidelity(flipped, ref, "int8", "cpu")
    assert m["top1_agree"] < 0.97 and any("top-1" in f for f in failures)
    overflow = ref.copy()
    overflow[1, 1, 3] = np.nan
    assert "reference itself gives NaN" in run._fidelity(ref, overflow, "fp32", "cpu")[1][0]
    assert run._fidelity(overflow, ref, "fp16", "cpu")[1] == ["NaN/inf logits"]


def test_speedup_is_against_pytorch_on_the_same_device():
    def row(label, p50):
        backend, device, precision = label.split()
        return {"backend": backend, "device": "cuda" if device in ("cuda", "trt-ep") else device,
                "precision": precision, "label": label, "latency_ms": {"p50": p50} if p50 else None}
    group = [row("torch cpu fp32", 40.0), row("onnxruntime cpu fp32", 10.0), row("torch cuda fp32", 4.0),
             row("onnxruntime cuda fp16", 1.0), row("onnxruntime cpu int8", None)]
    run._add_speedups(group)
    assert [r.get("speedup") for r in group] == [1.0, 4.0, 1.0, 4.0, None]
    assert group[3]["speedup_baseline"] == "torch cuda fp32"
    cpu_only = [row("torch cpu fp32", 40.0), row("onnxruntime cuda fp32", 5.0)]
    run._add_speedups(cpu_only)
    assert cpu_only[1]["speedup"] == 8.0 and cpu_only[1]["speedup_baseline"] == "torch cpu fp32"


def test_fidelity_verdict_counts_accuracy_when_there_are_labels():
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 3, (100, 10)).astype(np.float32)
    labels = ref.argmax(1)
    worse = ref.copy()
    worse[:2] = worse[:2, ::-1]  # two images change class: 2 accuracy points, 98 % agreement
    m, failures = run._fidelity(worse, ref, "int8", "cpu", labels)
    assert m["n"] == 100 and m["accuracy"] == {"n": 100, "reference": 1.0, "candidate": 0.98,
                                                "drop_points": pytest.approx(2.0)}
    assert failures == ["accuracy drop 2.00 points > 1.0"]  # agreement 98 % passes INT8's 97 %, accuracy does not
    assert run._fidelity(worse, ref, "int8", "cpu")[0]["accuracy"] is None  # no labels: agreement only


def test_fidelity_set_is_64_distinct_photo_crops_or_the_folder_with_labels(tmp_path):
    from PIL import Image

    from vanexport.model.variants import Preprocessing

    pre = Preprocessing(input_size=32)
    default = run.fidelity_set(pre, seed=0)
    x = default.array
    assert x.shape == (run.FIDELITY_IMAGES, 3, 32, 32) and run.FIDELITY_IMAGES >= 64 and default.labels is None
    assert len({a.tobytes() for a in x}) == len(x)  # every one a different view
    assert np.array_equal(run.fidelity_set(pre, seed=0).array, x)  # and the same ones every run
    for label in ("0", "1", "2"):
        (tmp_path / label).mkdir()
        for i in range(2):
            Image.fromarray(np.full((40, 40, 3), 60 * i + int(label), np.uint8)).save(tmp_path / label / f"{i}.png")
    folder = run.fidelity_set(pre, tmp_path, num_classes=10)
    assert folder.array.shape == (6, 3, 32, 32) and folder.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_input_pool_is_distinct_batches_of_the_fidelity_images():
    images = np.random.default_rng(0).normal(0, 1, (10, 3, 8, 8)).astype(np.float32)
    for batch in (1, 3, 10, 16):
        pool = run.input_pool(images, batch=batch, seed=0)
        assert pool.dtype == np.float32 and pool.shape[1:] == (batch, 3, 8, 8) and 2 <= pool.shape[0] <= 8
        assert all(not np.array_equal(pool[i], pool[j]) for i in range(len(pool)) for j in range(i))
        members = {a.tobytes() for a in images}
        assert all(img.tobytes() in members for b in pool for img in b)  # only images of the set


def test_worker_fidelity_outputs_cover_every_image_in_batches_of_the_row(tmp_path):
    images = np.arange(7 * 2, dtype=np.float32).reshape(7, 2)
    np.save(tmp_path / "f.npy", images)
    calls = []

    def call(x):
        calls.append(len(x))
        return x * 10

    out = worker.fidelity_outputs(call, str(tmp_path / "f.npy"), batch=3)
    assert calls == [3, 3, 3] and np.array_equal(out, images * 10)  # the last batch padded, its padding dropped


def test_speedup_against_an_unstable_baseline_is_flagged():
    def row(label, p50, unstable):
        backend, device, precision = label.split()
        return {"variant": "b0", "batch": 1, "backend": backend, "device": device, "precision": precision,
                "label": label, "latency_ms": {"p50": p50, "unstable": unstable, "spread": 0.5 if unstable else 0.01}}
    group = [row("torch cpu fp32", 40.0, True), row("onnxruntime cpu fp32", 10.0, False)]
    run._add_speedups(group)
    assert group[1]["speedup"] == 4.0 and group[1]["speedup_baseline_unstable"] is True
    for r in group:
        r.update(compute_ms=None, warnings=[])
    warnings = run._row_warnings(group)
    assert any("against torch cpu fp32, whose timing was unstable" in w for w in warnings)
    steady = [row("torch cpu fp32", 40.0, False), row("onnxruntime cpu fp32", 10.0, False)]
    run._add_speedups(steady)
    assert steady[1]["speedup_baseline_unstable"] is False


# --- table, JSON, CSV --------------------------------------------------------------------------------------

@pytest.fixture
def synthetic_report():
    plan = cases.plan_cases(["b0"], [1], ["torch", "onnxruntime"], ["fp32", "int8"], "cpu")
    lat = stats.summarize([10.0, 11.0, 12.0, 30.0], batch=1)
    steady = stats.summarize([5.0, 5.0, 5.1, 5.0], batch=1)
    fid = {"n": 64, "top1_agree": 1.0, "top5_agree": 1.0, "max_abs_err": 2e-6, "min_cosine": 1.0,
           "accuracy": {"n": 64, "reference": 0.75, "candidate": 0.75, "drop_points": 0.0}}
    bad = dict(fid, top1_agree=0.9, accuracy={"n": 64, "reference": 0.75, "candidate": 0.7, "drop_points": 5.0})
    rows = [run._row(plan[0], 224, "ok", latency_ms=lat, images_per_s=lat["images_per_s"], fidelity=fid,
                     speedup=1.0, speedup_baseline="torch cpu fp32", speedup_baseline_unstable=True, size_mb=16.5,
                     peak_rss_mib=300.0),
            run._row(plan[1], 224, "failed", "RuntimeError: boom"),
            run._row(plan[2], 224, "skipped", "INT8 needs calibration images: pass --calib DIR"),
            run._row(plan[2], 224, "validation failed", "accuracy drop 5.00 points > 1.0", latency_ms=steady,
                     images_per_s=steady["images_per_s"], fidelity=bad, fidelity_failures=["accuracy drop 5.00 "
                     "points > 1.0"], speedup=2.2, speedup_baseline="torch cpu fp32", speedup_baseline_unstable=True,
                     size_mb=4.4, peak_rss_mib=200.0)]
    env = run.bench_environment(None)
    env["load_average_end"] = None
    return run.BenchReport({"iters": 4, "seconds": None, "warmup": 1, "images": "heldout/"}, env, rows,
                           ["something to know"]).to_dict()


def test_rows_share_one_schema_and_csv_is_flat(synthetic_report, tmp_path):
    keys = [set(r) for r in synthetic_report["rows"]]
    assert keys[0] == keys[1] == keys[2]
    output.write_csv(synthetic_report, tmp_path / "b.csv")
    with open(tmp_path / "b.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert list(lines[0]) == list(output.CSV_COLUMNS) and len(lines) == 4
    assert lines[0]["p50_ms"] == str(synthetic_report["rows"][0]["latency_ms"]["p50"])
    assert lines[0]["cpu"] == synthetic_report["environment"]["cpu"] and lines[2]["p50_ms"] == ""
    assert lines[1]["status"] == "failed" and lines[2]["reason"].startswith("INT8 needs")
    assert lines[3]["accuracy"] == "0.7" and lines[3]["reference_accuracy"] == "0.75"
    assert lines[3]["fidelity_failures"].startswith("accuracy drop") and lines[3]["speedup_baseline_unstable"] == "True"
    output.write_json(synthetic_report, tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text()) == json.loads(json.dumps(synthetic_report))


def test_table_shows_speed_fidelity_failures_and_skips(synthetic_report, capsys):
    from vanexport.cli.render import render_bench

    render_bench(synthetic_report)
    out = capsys.readouterr().out
    assert "top-1 n=64" in out and "acc." in out  # the number of images compared, and accuracy
    ok_line = next(line for line in out.splitlines() if "torch cpu fp32" in line)
    assert "16.5" in ok_line and "1.00x" in ok_line and "100.0%" in ok_line and "~" in ok_line  # ~: unstable
    bad_line = next(line for line in out.splitlines() if "onnxruntime cpu int8" in line and "4.4" in line)
    assert "!90.0%" in bad_line and "70.0%" in bad_line  # !: failed its fidelity check
    assert "2.20x?" in bad_line  # ?: a speed-up against an unstable baseline
    assert "failed: b0 bs1 onnxruntime cpu fp32: RuntimeError: boom" in out
    assert "validation failed: b0 bs1 onnxruntime cpu int8: accuracy drop 5.00 points" in out
    assert "skipped (INT8 needs calibration images: pass --calib DIR): onnxruntime cpu int8" in out
    assert "PyTorch FP32 accuracy of VAN-b0 on these images: 75.0%" in out and "every image of heldout/" in out
    assert "warning: something to know" in out


def test_plot_marks_unstable_points_and_failed_fidelity(synthetic_report, tmp_path):
    series = {s["label"]: s for s in output.plot_series(synthetic_report)["b0"]}
    assert set(series) == {"torch cpu fp32 (unstable)", "onnxruntime cpu int8 (fidelity failed)"}
    torch_point, = series["torch cpu fp32 (unstable)"]["points"]
    int8_point, = series["onnxruntime cpu int8 (fidelity failed)"]["points"]
    assert torch_point["unstable"] and not torch_point["fidelity_failed"]
    assert int8_point["fidelity_failed"] and not int8_point["unstable"]
    output.write_plot(synthetic_report, tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_worker_failure_becomes_a_failed_result(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    np.save(tmp_path / "pool.npy", np.zeros((2, 1, 3, 32, 32), np.float32))
    spec = {"target": {"backend": "onnxruntime", "device": "cpu", "precision": "fp32",
                       "provider": "CPUExecutionProvider"}, "model": str(bad), "inputs": str(tmp_path / "pool.npy"),
            "outputs": str(tmp_path / "o.npy"), "result": str(tmp_path / "r.json"), "warmup": 1, "iters": 2,
            "seconds": None, "threads": None, "cache_dir": str(tmp_path)}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert worker.main([str(tmp_path / "spec.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["status"] == "failed" and "cannot load" in result["reason"] and not (tmp_path / "o.npy").exists()


# --- the machine's floor -----------------------------------------------------------------------------------

def test_floors_from_layer_costs():
    costs = [{"macs": 10**9, "bytes": 10**6}, {"macs": 10**6, "bytes": 10**9}]  # compute-bound, memory-bound
    f = floor.floors_ms(costs, peak_gflops=100.0, bandwidth_gbs=10.0)
    assert f["compute_floor_ms"] == pytest.approx(2 * (10**9 + 10**6) / 100e9 * 1e3)
    assert f["roofline_floor_ms"] == pytest.approx((2e9 / 100e9 + 1e9 / 10e9) * 1e3)
    assert f["memory_bound_layers"] == 1 and f["gmacs"] == pytest.approx(1.001)


class SteppingClock:
    """perf_counter for the ceilings: each timed run lasts the next of `durations` (warm-up runs are not timed)."""

    def __init__(self, durations):
        self.durations, self.now, self.starts = list(durations), 0.0, 0

    def __call__(self) -> float:
        if self.starts % 2 == 0:  # a start reading
            self.starts += 1
            return self.now
        self.starts += 1
        self.now += self.durations.pop(0)
        return self.now


def test_ceilings_are_work_over_the_best_run(monkeypatch):
    """The ceilings' arithmetic on a clock the test controls (never this machine's speed): FLOPs of an n^3 MatMul
    (2 n^3) and bytes an Add reads and writes (2 x 4 n), over the fastest of the timed runs."""
    monkeypatch.setattr(floor.time, "perf_counter", SteppingClock([0.004, 0.002, 0.003]))
    assert floor.matmul_peak_gflops(64, repeats=3) == pytest.approx(2 * 64**3 / 0.002 / 1e9)
    monkeypatch.setattr(floor.time, "perf_counter", SteppingClock([0.5, 0.25]))
    assert floor.bandwidth_gbs(2**20, repeats=2) == pytest.approx(2 * 2**20 / 0.25 / 1e9)


def test_best_seconds_runs_warmups_untimed(monkeypatch):
    runs, clock = [], SteppingClock([3.0, 1.0, 2.0])
    monkeypatch.setattr(floor.time, "perf_counter", clock)
    assert floor._best_seconds(lambda: runs.append(1), repeats=3, warmup=2) == 1.0
    assert len(runs) == 5 and clock.durations == []


# --- a real run through the CLI ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    r = CliRunner().invoke(cli, ["bench", "--variant", "b0", "--backends", "torch,ort", "--precision", "fp32",
                                 "--batch", "1,2", "--img-size", "64", "--iters", "4", "--warmup", "1", "--json",
                                 "--csv", str(tmp / "b.csv"), "--plot", str(tmp / "b.png")], catch_exceptions=False)
    return r, tmp


@pytest.mark.slow
def test_cli_run_json_structure_and_sanity(cli_run):
    r, _ = cli_run
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["settings"]["batches"] == [1, 2] and report["environment"]["cpu"]
    ran = [row for row in report["rows"] if row["status"] != "skipped"]
    assert sorted((row["batch"], row["label"]) for row in ran) == [
        (1, "onnxruntime cpu fp32"), (1, "torch cpu fp32"), (2, "onnxruntime cpu fp32"), (2, "torch cpu fp32")]
    for row in ran:
        lat = row["latency_ms"]
        assert row["status"] == "ok" and lat["n"] == 4
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert row["images_per_s"] > 0 and row["speedup"] > 0
        assert row["fidelity"]["max_abs_err"] < 1e-4 and row["fidelity"]["top1_agree"] == 1.0
        assert row["peak_rss_mib"] > row["rss_before_mib"] > 0
    torch_rows = [row for row in ran if row["backend"] == "torch"]
    assert all(row["speedup"] == 1.0 and row["speedup_baseline"] == "torch cpu fp32" for row in torch_rows)
    ort = next(row for row in ran if row["backend"] == "onnxruntime")
    assert ort["size_mb"] > 1 and ort["model_file"].endswith("van_b0_64.onnx")
    for row in report["rows"]:
        assert (row["status"] == "skipped") == bool(row["reason"])


@pytest.mark.slow
def test_cli_run_writes_csv_and_plot(cli_run):
    r, tmp = cli_run
    with open(tmp / "b.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == len(json.loads(r.stdout)["rows"])
    ok = [line for line in lines if line["status"] == "ok"]
    assert len(ok) == 4 and all(float(line["p50_ms"]) > 0 for line in ok)
    assert (tmp / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in r.stderr


def test_cli_run_openvino_rows(digits):
    """OpenVINO FP32 and BF16 rows, each in its own process, each judged by its precision's fidelity verdict (on
    the trained digits model and its own held-out digits: random weights, or photos a digits model was never shown,
    give near-tied logits, whose top-1 a BF16 rounding may flip)."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'vanexport[openvino]')")
    from vanexport.runtime.openvino_backend import cpu_precisions

    r = CliRunner().invoke(cli, ["bench", "--weights", digits.weights, "--images", digits.heldout_dir,
                                 "--backends", "ov", "--batch", "2", "--img-size", "64", "--iters", "3", "--warmup", "1", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = {row["label"]: row for row in json.loads(r.stdout)["rows"]}
    assert list(rows) == ["openvino cpu fp32", "openvino cpu bf16", "openvino cpu int8", "openvino cpu int8-cpu"]
    assert rows["openvino cpu int8"]["reason"] == rows["openvino cpu int8-cpu"]["reason"] == \
        "INT8 needs calibration images: pass --calib DIR"
    fp32 = rows["openvino cpu fp32"]
    assert fp32["status"] == "ok" and fp32["fidelity"]["max_abs_err"] < 1e-4 and fp32["latency_ms"]["n"] == 3
    assert fp32["model_file"].endswith("van_b0_64.onnx") and fp32["threads"] >= 1
    bf16 = rows["openvino cpu bf16"]
    if "bf16" in cpu_precisions():
        assert bf16["status"] == "ok" and bf16["model_file"] == fp32["model_file"]
        assert 1e-4 < bf16["fidelity"]["max_abs_err"] < 0.5 and bf16["fidelity"]["min_cosine"] >= 0.999
        accuracy = bf16["fidelity"]["accuracy"]
        assert accuracy["n"] == 400 and accuracy["candidate"] >= 0.95 and accuracy["drop_points"] <= 1.0
    else:
        assert bf16["status"] == "skipped" and "no native BF16" in bf16["reason"]


@pytest.mark.parametrize("args, message", [
    (["--iters", "3", "--seconds", "1"], "contradict"),
    (["--backends", "torch,tflite"], "unknown backend 'tflite'"),
    (["--precision", "fp8"], "unknown precision 'fp8'"),
    (["--batch", "1,x"], "is not a comma-separated list"),
    (["--batch", "0"], "batch sizes must be positive"),
    (["--plot", "{tmp}/b.jpg"], "is not a .png"),
    (["--csv", "{tmp}/nowhere/b.csv"], "does not exist"),
    (["--calib", "{tmp}/missing"], "calibration data"),
    (["--variant", "b9"], "unknown VAN variant 'b9'"),
])
def test_cli_user_errors(tmp_path, args, message):
    r = CliRunner().invoke(cli, ["bench", *[a.format(tmp=tmp_path) for a in args]])
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().splitlines()[-1].startswith("error: ") and message in r.stderr
    assert not list(tmp_path.iterdir())


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.gpu
@pytest.mark.skipif(_cuda_devices() == 0, reason="needs a CUDA GPU visible to PyTorch")
def test_gpu_rows_report_host_and_compute_time_and_gpu_memory():
    r = CliRunner().invoke(cli, ["bench", "--variant", "b0", "--device", "cuda", "--backends", "torch,ort",
                                 "--precision", "fp32,fp16", "--batch", "2", "--iters", "5", "--json"])
    assert r.exit_code in (0, 1), r.output  # 1: a row failed its fidelity check, which the table explains
    rows = {row["label"]: row for row in json.loads(r.stdout)["rows"]}
    for label in ("torch cuda fp32", "torch cuda fp16"):
        row = rows[label]
        assert row["status"] in ("ok", "validation failed"), row["reason"]
        host, compute = row["latency_ms"], row["compute_ms"]
        assert 0 < compute["p50"] and 0 < host["p50"]
        assert compute["min"] <= host["max"]  # compute excludes the host copies
        assert row["gpu_memory"]["torch_peak_allocated_mib"] > 0
    assert rows["torch cuda fp16"]["fidelity"]["top1_agree"] > 0.5
