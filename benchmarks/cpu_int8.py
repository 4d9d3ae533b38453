"""INT8 that pays on a CPU: every CPU form of VAN-b0 (ONNX Runtime and OpenVINO; FP32, BF16 and the INT8 files),
timed side by side in one run, each with its fidelity verdict on the trained digits VAN, its floor, and the choice
vanexport's `predict` would make from these times.

Speed: VAN-b0 with random weights (seed 0; speed does not depend on the values), 224x224, batch 1 and 8. Every row is
a fresh process (cpu_fastest.py's worker: load, warm-up, timed calls on rotating distinct batches); rounds alternate
the rows, each round starting at another row and every other round running backwards, so a busy spell of a shared
machine hits every row alike. Medians and percentiles are reported, and ratios are taken within the run: per round
(the median of the per-round p50 ratios, "paired") and of the run's p50s.

Fidelity: the same forms made from the trained digits VAN-b0 (64x64, `python -m vanexport.zoo.digits`), with the same
quantizers and the same calibration images (its calibration split, the seeded pick of 256 vanexport's INT8 path
takes), run by the same runtime on its 400 held-out images and judged by vanexport's thresholds for the precision
(check/tolerances.py: INT8 >= 97 % top-1 agreement and <= 1 accuracy point lost against the labels).

Floors: the best of each round's MatMul peak (2048^3) through each runtime in each precision
(vanexport/bench/floor.py: matmul_peak; INT8 a quantized MatMul), each in its own process every round.

Rows:
  ort_fp32       ONNX Runtime FP32, as vanexport opens it (the default CPU path): the baseline of the INT8 targets
  ov_hand_fp32   OpenVINO FP32 by hand (compile_model(file, "CPU", {INFERENCE_PRECISION_HINT: f32}))
  ov_fp32        vanexport's OpenVINO backend, FP32
  ov_bf16        vanexport's OpenVINO backend, BF16 (where the CPU has it)
  ort_int8_trt   vanexport's TensorRT Q/DQ INT8 file (`quantize --precision int8`) on ONNX Runtime
  ov_int8_trt    the same file on vanexport's OpenVINO backend
  ort_int8_cpu   the CPU INT8 file (precision/int8_cpu.py: NNCF, ONNX backend) on ONNX Runtime
  ov_int8_cpu    the same file on vanexport's OpenVINO backend
  ort_qop_u8s8, ort_qdq_u8s8, ort_qdq_s8s8   ONNX Runtime's own CPU forms (quantize_static, per-channel, MinMax, on
                 Conv/MatMul/Gemm, outputs quantized): QOperator or QDQ, activations U8 or S8, weights S8
  ov_nncf_ir     NNCF on the OpenVINO model read from the FP32 ONNX, saved as IR, run by hand in OpenVINO
Finally OpenVINO's per-layer profile (PERF_COUNT) of the CPU INT8 file: what limits the rest.

    PYTHONPATH=. python benchmarks/cpu_int8.py                       # the published run -> results/cpu_int8.json
    PYTHONPATH=. python benchmarks/cpu_int8.py --rounds 1 --iters 5  # a quick look
    PYTHONPATH=. python benchmarks/cpu_int8.py --report benchmarks/results/cpu_int8.json
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpu_fastest as cf  # noqa: E402  (its row worker, quiet-machine wait and per-round statistics)

RESULTS = Path(__file__).parent / "results"
VARIANT, IMG = "b0", 224
ROWS = {  # name: (cpu_fastest runner, file, options)
    "ort_fp32": ("ort", "fp32", {}),
    "ov_hand_fp32": ("ov_hand", "fp32", {}),
    "ov_fp32": ("ov", "fp32", {"precision": "fp32"}),
    "ov_bf16": ("ov", "fp32", {"precision": "bf16"}),
    "ort_int8_trt": ("ort", "int8_trt", {}),
    "ov_int8_trt": ("ov", "int8_trt", {"precision": "int8"}),
    "ort_int8_cpu": ("ort", "int8_cpu", {}),
    "ov_int8_cpu": ("ov", "int8_cpu", {"precision": "int8"}),
    "ort_qop_u8s8": ("ort", "ort_qop_u8s8", {}),
    "ort_qdq_u8s8": ("ort", "ort_qdq_u8s8", {}),
    "ort_qdq_s8s8": ("ort", "ort_qdq_s8s8", {}),
    "ov_nncf_ir": ("ov_hand", "nncf_ir", {}),
}
PEAKS = {"peak_ort_fp32": ("onnxruntime", "fp32"), "peak_ort_int8": ("onnxruntime", "int8"),
         "peak_ov_fp32": ("openvino", "fp32"), "peak_ov_bf16": ("openvino", "bf16"),
         "peak_ov_int8": ("openvino", "int8")}
# the floor each row is held to: its runtime's peak in the precision it computes in
ROW_PEAK = {"ort_fp32": "peak_ort_fp32", "ov_hand_fp32": "peak_ov_fp32", "ov_fp32": "peak_ov_fp32",
            "ov_bf16": "peak_ov_bf16", "ov_nncf_ir": "peak_ov_int8"} | \
    {n: "peak_ort_int8" for n in ROWS if n.startswith("ort_") and n != "ort_fp32"} | \
    {n: "peak_ov_int8" for n in ("ov_int8_trt", "ov_int8_cpu")}
# (vanexport backend, precision it computes in, file) of the rows `predict` can choose between
PREDICT_WAYS = {"ort_fp32": ("onnxruntime-cpu", "fp32", "fp32"), "ov_fp32": ("openvino", "fp32", "fp32"),
                "ort_int8_trt": ("onnxruntime-cpu", "int8", "int8_trt"), "ov_int8_trt": ("openvino", "int8", "int8_trt"),
                "ort_int8_cpu": ("onnxruntime-cpu", "int8", "int8_cpu"), "ov_int8_cpu": ("openvino", "int8", "int8_cpu")}
ORT_FORMS = {"ort_qop_u8s8": ("QOperator", "QUInt8"), "ort_qdq_u8s8": ("QDQ", "QUInt8"),
             "ort_qdq_s8s8": ("QDQ", "QInt8")}


# --- the files ----------------------------------------------------------------------------------------------------

def make_forms(fp32: Path, calib: Path, work: Path, num_calib: int | None = None) -> dict[str, Path]:
    """Every file the rows run, made from `fp32` with the calibration images `calib` (the same seeded pick for all)."""
    from vanexport.precision.int8 import quantize_int8
    from vanexport.precision.int8_cpu import quantize_int8_cpu

    work.mkdir(parents=True, exist_ok=True)
    files = {"fp32": fp32}
    files["int8_trt"] = Path(quantize_int8(fp32, calib, work / "int8_trt.onnx", num_calib=num_calib,
                                           validate=False).path)
    files["int8_cpu"] = Path(quantize_int8_cpu(fp32, calib, work / "int8_cpu.onnx", num_calib=num_calib,
                                               validate=False).path)
    array = calibration_array(fp32, calib, num_calib)
    for name, (fmt, act) in ORT_FORMS.items():
        files[name] = ort_form(fp32, array, work / f"{name}.onnx", fmt, act)
    files["nncf_ir"] = nncf_ir(fp32, array, work / "nncf_ir.xml")
    return files


def calibration_array(fp32: Path, calib: Path, num_calib: int | None) -> np.ndarray:
    from vanexport.data.calibration import load_calibration, open_calibration
    from vanexport.formats.onnx_metadata import read_metadata

    return load_calibration(open_calibration(calib), read_metadata(fp32).preprocess, num_calib).array


def ort_form(fp32: Path, array: np.ndarray, out: Path, fmt: str, activation: str) -> Path:
    """ONNX Runtime's quantize_static in a form for its own CPU kernels (not TensorRT's): per-channel S8 weights,
    outputs of the quantized ops quantized too (so its QDQ fusions can make QLinearConv), MinMax ranges."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from vanexport.precision.graph import constants_to_initializers

    proto = onnx.load(str(fp32))
    constants_to_initializers(proto)
    pre = out.with_suffix(".pre.onnx")
    onnx.save(proto, str(pre))
    quant_pre_process(str(pre), str(pre), skip_symbolic_shape=True)

    class Reader:
        def __init__(self):
            self.batches = iter([{"input": array[i:i + 8]} for i in range(0, len(array), 8)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(pre), str(out), Reader(), quant_format=getattr(QuantFormat, fmt),
                    activation_type=getattr(QuantType, activation), weight_type=QuantType.QInt8, per_channel=True,
                    op_types_to_quantize=["Conv", "MatMul", "Gemm"], calibrate_method=CalibrationMethod.MinMax)
    return out


def nncf_ir(fp32: Path, array: np.ndarray, out: Path) -> Path:
    """NNCF on the OpenVINO model read from the ONNX file (its OpenVINO backend), saved as IR (weights not
    compressed to FP16)."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32))
    quantized = nncf.quantize(model, nncf.Dataset([array[i:i + 1] for i in range(len(array))]),
                              target_device=nncf.TargetDevice.CPU, subset_size=len(array))
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    return out


# --- fidelity on the trained digits model -------------------------------------------------------------------------

def fidelity(files: dict[str, Path], heldout: Path, weights: str) -> dict:
    """Every row on the digits VAN's held-out images against PyTorch FP32, judged by vanexport's thresholds."""
    from vanexport.check import metrics
    from vanexport.check.tolerances import TOLERANCES, abs_ok, verdict_failures
    from vanexport.data.images import label_indices, load_folder
    from vanexport.formats.onnx_metadata import read_metadata
    from vanexport.model.factory import load_model
    from vanexport.runtime.batching import run_batched
    from vanexport.runtime.torch_backend import TorchBackend

    meta = read_metadata(files["fp32"])
    data = load_folder(heldout, meta.preprocess)
    labels = label_indices(data.labels, meta.num_classes)
    model, _, _ = load_model(meta.variant, weights, meta.num_classes, quiet=True)
    reference = run_batched(TorchBackend(model), data.array, 8)
    out = {}
    for name, (runner, file, options) in ROWS.items():
        call, _ = cf.load_runner(runner, files[file], options)
        logits = np.concatenate([np.asarray(call(data.array[i:i + 8]), np.float32)
                                 for i in range(0, len(data.array), 8)])
        m = metrics.compare_logits(logits, reference)
        m["accuracy"] = metrics.accuracy([(logits, reference, labels)])
        precision = {"ov_bf16": "bf16"}.get(name, "fp32" if file == "fp32" else "int8")
        tol = TOLERANCES[precision]
        failures = verdict_failures(m, tol, abs_ok(m, tol), m["accuracy"])
        out[name] = {"precision": precision, "top1_agree": m["top1_agree"], "min_cosine": m["min_cosine"],
                     "max_abs_err": m["max_abs_err"], "accuracy": m["accuracy"]["candidate"],
                     "drop_points": m["accuracy"]["drop_points"], "passed": not failures, "failures": failures}
        del call
    return out


# --- peaks and the profile, each in its own process ---------------------------------------------------------------

def peak_worker(spec_path: str) -> None:
    from vanexport.bench.floor import matmul_peak

    spec = json.loads(Path(spec_path).read_text())
    try:
        result = {"status": "ok", "gflops": matmul_peak(spec["runtime"], spec["precision"])}
    except Exception as e:  # the row fails, the run goes on
        result = {"status": "failed", "reason": f"{type(e).__name__}: {str(e).strip()[:200]}"}
    Path(spec["result"]).write_text(json.dumps(result))


def run_peak(name: str, work: Path, args) -> dict:
    runtime, precision = PEAKS[name]
    spec = work / f"{name}_{time.monotonic_ns()}.json"
    spec.write_text(json.dumps({"runtime": runtime, "precision": precision, "result": str(spec) + ".out"}))
    cf.wait_for_quiet(args.quiet_wait)
    subprocess.run([sys.executable, __file__, "--peak-worker", str(spec)], env=_env(), check=False)
    try:
        return json.loads(Path(str(spec) + ".out").read_text())
    except (OSError, ValueError):
        return {"status": "failed", "reason": "the process died"}


def profile_worker(spec_path: str) -> None:
    """OpenVINO's per-layer counters of one file, summed per layer type and kernel (exec_type), ms per run."""
    import openvino as ov

    spec = json.loads(Path(spec_path).read_text())
    pool = np.load(spec["inputs"])
    compiled = ov.Core().compile_model(spec["file"], "CPU", {"PERF_COUNT": True, "PERFORMANCE_HINT": "LATENCY",
                                                             "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    request.infer({0: pool[0]})
    ms: dict = defaultdict(float)
    for i in range(spec["iters"]):
        request.infer({0: pool[i % len(pool)]})
        for layer in request.get_profiling_info():
            ms[f"{layer.node_type} ({layer.exec_type})"] += layer.real_time.total_seconds() * 1e3 / spec["iters"]
    total = sum(ms.values())
    Path(spec["result"]).write_text(json.dumps({
        "file": Path(spec["file"]).name, "kernel_ms_per_run": total,
        "by_type": [{"type": k, "ms": v, "share": v / total} for k, v in sorted(ms.items(), key=lambda kv: -kv[1])
                    if v > 0]}))


def profile(file: Path, pool_path: Path, batch: int, work: Path) -> dict:
    result = work / f"profile_bs{batch}.json"
    spec = result.with_suffix(".spec.json")
    spec.write_text(json.dumps({"file": str(file), "inputs": str(pool_path), "iters": 50 if batch == 1 else 10,
                                "result": str(result)}))
    subprocess.run([sys.executable, __file__, "--profile-worker", str(spec)], env=_env(), check=True)
    return json.loads(result.read_text())


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                                        os.environ.get("PYTHONPATH", "")]))


# --- the run ------------------------------------------------------------------------------------------------------

def summarize(name: str, results: list[dict], batch: int) -> dict:
    """cpu_fastest's per-row statistics without its fidelity part (fidelity is measured on the digits model)."""
    ok = [r for r in results if r["status"] == "ok"]
    if not ok:
        return {"row": name, "status": "failed", "reason": results[0].get("reason")}
    samples = np.concatenate([r["samples_ms"] for r in ok])
    p10, p50, p90 = (float(v) for v in np.percentile(samples, [10, 50, 90]))
    return {"row": name, "status": "ok", "batch": batch, "n": int(samples.size), "p10": p10, "p50": p50, "p90": p90,
            "rounds": len(results), "round_p50": [float(np.median(r["samples_ms"])) for r in ok],
            "round_quiet": [bool(r["foreign_cpu"] < cf.QUIET) for r in ok],
            "round_foreign_cpu": [round(r["foreign_cpu"], 3) for r in ok],
            "fast_state_p50": cf.fast_state(ok), "load_s": float(np.median([r["load_s"] for r in ok])),
            "info": ok[0]["info"], "failed_rounds": len(results) - len(ok)}


def paired(base: dict, row: dict) -> float:
    """Median over rounds of base p50 / row p50 (all rounds: on a shared machine few are quiet)."""
    return float(np.median([b / r for b, r in zip(base["round_p50"], row["round_p50"])]))


def predict_choice(summary: dict, files: dict) -> dict:
    """What vanexport's predict would run, given this run's p50s as the measured times of its CPU ways."""
    from vanexport.device.select import Candidate, Device, by_measured_speed, choose, speed_key

    cands = [Candidate("onnx", str(files[f]), "int8" if f != "fp32" else "fp32", None, True)
             for f in ("fp32", "int8_trt", "int8_cpu")]
    choices = choose(cands, Device(ort_providers=("CPUExecutionProvider",), openvino="installed"))
    ms = {}
    for name, (backend, precision, file) in PREDICT_WAYS.items():
        if summary.get(name, {}).get("status") == "ok":
            ms[(backend, precision, str(files[file]))] = summary[name]["p50"]
    ordered = by_measured_speed(choices, ms)
    names = [_row_of(c, files) for c in ordered]
    return {"order": names, "never_chosen": ordered[0].skipped if ordered else [],
            "chosen": names[0] if names else None, "times_ms": {n: summary[n]["p50"] for n in names if n in summary}}


def _row_of(choice, files: dict) -> str:
    file = next(k for k, v in files.items() if str(v) == choice.candidate.path)
    return next(n for n, w in PREDICT_WAYS.items() if w == (choice.backend, choice.precision, file))


def targets(summary: dict, fid: dict) -> dict:
    """The issue's targets on this run: the best faithful INT8 row against ONNX Runtime FP32 (p50 ratio and paired
    per-round ratio), the best of vanexport's FP32 paths against OpenVINO FP32 by hand."""
    ok = {n: r for n, r in summary.items() if r["status"] == "ok"}
    base = ok.get("ort_fp32")
    int8 = [n for n in ok if fid.get(n, {}).get("precision") == "int8" and fid[n]["passed"]]
    out: dict = {"faithful_int8_rows": int8}
    if base and int8:
        best = min(int8, key=lambda n: ok[n]["p50"])
        out["best_int8"] = {"row": best, "x_ort_fp32_p50": base["p50"] / ok[best]["p50"],
                            "x_ort_fp32_paired": paired(base, ok[best])}
    fp32 = [n for n in ("ort_fp32", "ov_fp32") if n in ok]
    if fp32 and "ov_hand_fp32" in ok:
        best = min(fp32, key=lambda n: ok[n]["p50"])
        out["best_fp32"] = {"row": best, "x_ov_hand_p50": ok["ov_hand_fp32"]["p50"] / ok[best]["p50"],
                            "x_ov_hand_paired": paired(ok["ov_hand_fp32"], ok[best])}
    out["int8_slower_than_fp32_same_runtime"] = [
        n for n in ok if fid.get(n, {}).get("precision") == "int8"
        and ok[n]["p50"] >= ok["ort_fp32" if n.startswith("ort_") else "ov_fp32"]["p50"]]
    return out


def markdown(summary: dict, fid: dict, peaks: dict, batch: int, gmacs: float) -> str:
    base = summary.get("ort_fp32")
    lines = [f"\nVAN-b0 224, batch {batch} ({gmacs:.3f} GMAC per image)",
             "| row | p50 ms | p10 / p90 | x ONNX Runtime FP32 (p50 / paired) | floor / p50 (its own peak) "
             "| digits: agreement, drop, verdict |", "|---|---|---|---|---|---|"]
    for name, r in summary.items():
        if r["status"] != "ok":
            lines.append(f"| {name} | failed: {r['reason']} |")
            continue
        vs = f"{base['p50'] / r['p50']:.2f}x / {paired(base, r):.2f}x" if base and base["status"] == "ok" else ""
        peak = peaks.get(ROW_PEAK[name])
        floor = f"{2 * gmacs * batch / peak * 1e3 / r['p50']:.0%} of {2 * gmacs * batch / peak * 1e3:.2f} ms" \
            if peak else ""
        f = fid.get(name, {})
        verdict = (f"{f['top1_agree']:.2%}, {f['drop_points']:.2f}, {'pass' if f['passed'] else 'FAIL'}"
                   if f else "")
        lines.append(f"| {name} | {r['p50']:.2f} | {r['p10']:.2f} / {r['p90']:.2f} | {vs} | {floor} | {verdict} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", metavar="JSON", help="print the tables of a saved run again")
    ap.add_argument("--peak-worker", help=argparse.SUPPRESS)
    ap.add_argument("--profile-worker", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=60, help="timed calls per row and round at batch 1 (30 %% at 8)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--quiet-wait", type=float, default=10.0,
                    help="seconds to wait, before each row, for other work to leave the cores")
    ap.add_argument("--speed-calib", type=int, default=64,
                    help="calibration images for the 224x224 files that are only timed (speed does not depend on "
                         "the ranges; the digits files, whose fidelity counts, use every image up to 256)")
    ap.add_argument("--digits", default=None, help="the digits folder (default: prepared in a temporary folder)")
    ap.add_argument("--note", default="", help="recorded with the results")
    ap.add_argument("--out", default=str(RESULTS / "cpu_int8.json"))
    args = ap.parse_args()
    if args.peak_worker:
        return peak_worker(args.peak_worker)
    if args.profile_worker:
        return profile_worker(args.profile_worker)
    if args.report:
        return report(json.loads(Path(args.report).read_text()))

    from vanexport.bench.floor import layer_costs
    from vanexport.bench.run import bench_environment, input_pool
    from vanexport.data.images import photo_crops
    from vanexport.export.onnx import export_onnx
    from vanexport.model.variants import get_variant
    from vanexport.zoo import digits

    argv = [a for i, a in enumerate(sys.argv[1:]) if "--out" not in (a, sys.argv[i]) and not a.startswith("--out=")]
    record = {"command": "PYTHONPATH=. python benchmarks/cpu_int8.py " + shlex.join(argv), "note": args.note,
              "environment": bench_environment(None), "settings": vars(args) | {"variant": VARIANT, "img_size": IMG}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("• the digits VAN and its forms (fidelity)", flush=True)
        dig = digits.prepare(Path(args.digits or work / "digits"))
        digit_files = make_forms(Path(dig.onnx), Path(dig.calib_dir), work / "digits_forms")
        record["fidelity"] = fidelity(digit_files, Path(dig.heldout_dir), dig.weights)
        print("• VAN-b0 224 (random weights) and its forms (speed)", flush=True)
        fp32 = work / "van_b0_224.onnx"
        export_onnx(VARIANT, img_size=IMG, output=fp32)
        files = make_forms(fp32, Path(dig.calib_dir), work / "forms", num_calib=args.speed_calib)
        record["files"] = {k: {"bytes": sum(f.stat().st_size for f in p.parent.glob(p.stem + ".*"))}
                           for k, p in files.items()}
        gmacs = sum(c["macs"] for c in layer_costs(fp32, batch=1)) / 1e9
        preprocess = get_variant(VARIANT).preprocessing.at_size(IMG)
        photos = photo_crops(preprocess, 64, 0).array
        record["batches"] = {}
        for batch in (int(b) for b in args.batches.split(",")):
            pool_path = work / f"pool_bs{batch}.npy"
            np.save(pool_path, input_pool(photos, batch, 0))
            results: dict = defaultdict(list)
            names = list(ROWS) + list(PEAKS)
            for r in range(args.rounds):
                order = names[r % len(names):] + names[:r % len(names)]  # each round starts elsewhere
                order = order if r % 2 == 0 else order[::-1]  # and every other round runs backwards
                for name in order:
                    print(f"[bs{batch} round {r + 1}/{args.rounds}] {name}", flush=True)
                    if name in PEAKS:
                        results[name].append(run_peak(name, work, args))
                    else:
                        runner, file, options = ROWS[name]
                        results[name].append(cf.run_row(name, runner, files[file], options, pool_path, batch, args,
                                                        work))
            peaks = {n: max((x["gflops"] for x in results.pop(n) if x["status"] == "ok"), default=None)
                     for n in PEAKS}
            summary = {n: summarize(n, res, batch) for n, res in results.items()}
            for n, row in summary.items():
                if row["status"] == "ok" and peaks.get(ROW_PEAK[n]):
                    row["compute_floor_ms"] = 2 * gmacs * batch / peaks[ROW_PEAK[n]] * 1e3
                    row["floor_share"] = row["compute_floor_ms"] / row["p50"]
            record["batches"][str(batch)] = {"peaks_gflops": peaks, "gmacs_per_image": gmacs, "rows": summary,
                                             "targets": targets(summary, record["fidelity"]),
                                             "predict_choice": predict_choice(summary, files),
                                             "profile_int8_cpu_openvino": profile(files["int8_cpu"], pool_path, batch,
                                                                                  work)}
            print(markdown(summary, record["fidelity"], peaks, batch, gmacs), flush=True)
            print(json.dumps(record["batches"][str(batch)]["targets"], indent=1), flush=True)
    record["environment"]["load_average_end"] = round(os.getloadavg()[0], 2)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"• wrote {out}")


def report(record: dict) -> None:
    print(f"{record['command']}\n{record['environment']['cpu']}, {record['environment']['date']}; {record['note']}")
    for batch, b in record["batches"].items():
        print(markdown(b["rows"], record["fidelity"], b["peaks_gflops"], int(batch), b["gmacs_per_image"]))
        print("targets:", json.dumps(b["targets"]))
        print("predict would choose:", b["predict_choice"]["chosen"], "; order:", b["predict_choice"]["order"])
        prof = b["profile_int8_cpu_openvino"]
        print(f"OpenVINO profile of the CPU INT8 file, batch {batch} ({prof['kernel_ms_per_run']:.2f} ms of kernels): "
              + ", ".join(f"{t['type']} {t['share']:.0%}" for t in prof["by_type"][:10]))


if __name__ == "__main__":
    sys.exit(main())
