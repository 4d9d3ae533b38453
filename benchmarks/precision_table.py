"""What FP16 and INT8 cost on a trained VAN: held-out accuracy, top-1 agreement and cosine against the
PyTorch FP32 model, and conversion time, for FP32 / FP16 / INT8 (entropy, max, percentile calibration).
Then one INT8 sensitivity run. Writes benchmarks/results/precision.json and prints the table in docs/precision.md.

The model is VAN-b0 trained on scikit-learn's digits (vanexport/zoo/digits.py; trained once, then cached),
64x64 input, 10 classes; calibration on its 300-image calib split (256 used), measured on its 400 held-out
images, all saved as PNG folders and read back through the toolkit's own preprocessing.

    python benchmarks/precision_table.py [--repeats 3] [--out-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning made the PyTorch reference
# of `validate` ~20x slower (measured). It affects only the validation runs, not the conversion times reported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from vanexport.precision.sensitivity import sensitivity  # noqa: E402
from vanexport.precision.fp16 import convert_fp16
from vanexport.precision.int8 import quantize_int8  # noqa: E402
from vanexport.check.validate import validate  # noqa: E402
from vanexport.zoo.digits import prepare  # noqa: E402


def log(msg: str) -> None:
    print(f"• {msg}", file=sys.stderr)


def row(name: str, report, times: list[float] | None) -> dict:
    acc, o = report.accuracy, report.overall
    return {"model": name, "heldout_accuracy": acc["candidate"], "reference_accuracy": acc["reference"],
            "accuracy_drop_points": acc["drop_points"], "top1_agree": o["top1_agree"], "top5_agree": o["top5_agree"],
            "min_cosine": o["min_cosine"], "mean_cosine": o["mean_cosine"], "max_abs_err": o["max_abs_err"],
            "passed": report.passed, "failures": report.failures, "n": o["n"],
            "convert_s_median": statistics.median(times) if times else None, "convert_s_all": times}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3, help="conversions per row (each from scratch: no cache)")
    ap.add_argument("--out-dir", help="keep the models and image folders here [default: a temp folder]")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "precision.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.out_dir or tmp)
        art = prepare(work / "digits", progress=log)
        rows = [row("FP32 ONNX", validate(art.onnx, images=art.heldout_dir), None)]

        def timed(make, name):
            times, result = [], None
            for i in range(args.repeats):
                folder = work / f"{name}-{i}"
                folder.mkdir(parents=True, exist_ok=True)  # fresh folder: no calibration cache to reuse
                result = make(folder / f"{name}.onnx")
                times.append(result.seconds["total"])
                log(f"{name} run {i + 1}: {times[-1]:.2f} s")
            return result, times

        fp16, t = timed(lambda out: convert_fp16(art.onnx, out), "fp16")
        rows.append(row("FP16 (LayerNorm FP32)", validate(fp16.path, images=art.heldout_dir), t))
        for method in ("entropy", "max", "percentile"):
            q, t = timed(lambda out: quantize_int8(art.onnx, art.calib_dir, out, method=method), f"int8-{method}")
            rows.append(row(f"INT8 {method}", validate(q.path, images=art.heldout_dir), t))
        log("INT8 sensitivity (entropy, depth 2, held-out images)")
        sens = sensitivity(art.onnx, art.calib_dir, images=art.heldout_dir, progress=log)
    summary = {
        "model": "VAN-b0 trained on scikit-learn digits (64x64 RGB, 10 classes)", "recipe_key": art.recipe_key,
        "calibration": "256 of the 300 calib images", "heldout_images": rows[0]["n"],
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "repeats": args.repeats, "date": time.strftime("%Y-%m-%d"), "rows": rows,
        "sensitivity": {"mode": sens.mode, "depth": sens.depth, "seconds": sens.seconds, "baseline": sens.baseline,
                        "top_groups": sens.groups[:5], "recommended": sens.recommended, "passed": sens.passed},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print("| model | held-out accuracy | top-1 agreement with FP32 | min / mean cosine | conversion time (median) | verdict |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        conv = f"{r['convert_s_median']:.1f} s" if r["convert_s_median"] is not None else "-"
        print(f"| {r['model']} | {r['heldout_accuracy']:.2%} | {r['top1_agree']:.2%} | "
              f"{r['min_cosine']:.6f} / {r['mean_cosine']:.6f} | {conv} | {'pass' if r['passed'] else 'FAIL'} |")


if __name__ == "__main__":
    main()
