"""How many calibration images does INT8 need? For each method (entropy, max, percentile) and count, calibrate the
trained digits VAN-b0 on several seeded picks of its calib split, then:

- how much the activation ranges depend on which images were picked: for every quantized activation, the spread of
  its INT8 scale across the picks (max / min - 1), the median and the 90th percentile over all activations;
- what that costs: each INT8 file on the 400 held-out images against the FP32 ONNX file (top-1 agreement,
  accuracy, worst cosine), worst pick.

This is where vanexport's warning below `MIN_CALIB` inputs comes from (vanexport/data/calibration.py,
docs/precision.md#how-many-calibration-images).

    python benchmarks/calibration_count.py [--counts 8,16,32,64,128,256] [--picks 4]

Writes benchmarks/results/calibration_count.json and prints the table of docs/precision.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from vanexport.check import metrics  # noqa: E402
from vanexport.data.images import label_indices, load_folder  # noqa: E402
from vanexport.formats.onnx_metadata import read_metadata  # noqa: E402
from vanexport.precision.int8 import quantize_int8  # noqa: E402
from vanexport.runtime.batching import run_batched  # noqa: E402
from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from vanexport.zoo.digits import prepare  # noqa: E402


def log(msg: str) -> None:
    print(f"• {msg}", file=sys.stderr, flush=True)


def activation_scales(path) -> dict[str, float]:
    """The scale of every QuantizeLinear on an activation (weights are initializers, quantized without calibration)."""
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    return {n.input[0]: float(numpy_helper.to_array(inits[n.input[1]]))
            for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", default="8,16,32,64,128,256")
    ap.add_argument("--picks", type=int, default=4, help="seeded picks of the calibration images per count")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "calibration_count.json"))
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        art = prepare(work / "digits", progress=log)
        meta = read_metadata(art.onnx)
        held = load_folder(art.heldout_dir, meta.preprocess)
        labels = label_indices(held.labels, meta.num_classes)
        fp32 = run_batched(OnnxRuntimeBackend(art.onnx), held.array, 50)
        fp32_acc = float((fp32.argmax(1) == labels).mean())
        rows = []
        for method in ("entropy", "max", "percentile"):
            for n in counts:
                runs, scales = [], []
                for pick in range(args.picks):
                    out = work / f"{method}-{n}-{pick}" / "m_int8.onnx"
                    out.parent.mkdir()
                    t0 = time.perf_counter()
                    quantize_int8(art.onnx, art.calib_dir, out, num_calib=n, method=method, seed=pick, validate=False)
                    seconds = time.perf_counter() - t0
                    scales.append(activation_scales(out))
                    logits = run_batched(OnnxRuntimeBackend(out), held.array, 50)
                    m = metrics.compare_logits(logits, fp32)
                    runs.append({"pick": pick, "top1_agree": m["top1_agree"], "min_cosine": m["min_cosine"],
                                 "accuracy": float((logits.argmax(1) == labels).mean()), "seconds": seconds})
                agree = [r["top1_agree"] for r in runs]
                acc = [r["accuracy"] for r in runs]
                spread = np.array([max(s[k] for s in scales) / min(s[k] for s in scales) - 1 for k in scales[0]])
                row = {"method": method, "num_calib": n, "runs": runs, "activations": len(spread),
                       "scale_spread_median": float(np.median(spread)),
                       "scale_spread_p90": float(np.percentile(spread, 90)),
                       "top1_agree_min": min(agree), "top1_agree_mean": float(np.mean(agree)),
                       "accuracy_min": min(acc), "accuracy_max": max(acc),
                       "min_cosine_min": min(r["min_cosine"] for r in runs)}
                rows.append(row)
                log(f"{method} n={n}: scale spread median {row['scale_spread_median']:.1%} p90 "
                    f"{row['scale_spread_p90']:.1%}; agreement {row['top1_agree_min']:.2%}..{max(agree):.2%}, "
                    f"accuracy {row['accuracy_min']:.2%}..{row['accuracy_max']:.2%}")
    summary = {"model": "VAN-b0 trained on scikit-learn digits (64x64 RGB, 10 classes)", "recipe_key": art.recipe_key,
               "heldout_images": len(held.array), "fp32_accuracy": fp32_acc, "picks": args.picks,
               "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                           "python": platform.python_version()},
               "date": time.strftime("%Y-%m-%d"), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"FP32 accuracy {fp32_acc:.2%} on {len(held.array)} held-out images; {args.picks} picks per count\n")
    print("| method | images | scale spread across picks: median / p90 | top-1 agreement, worst pick | "
          "accuracy, worst..best pick | worst cosine |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['num_calib']} | {r['scale_spread_median']:.1%} / {r['scale_spread_p90']:.1%} | "
              f"{r['top1_agree_min']:.2%} | {r['accuracy_min']:.2%}..{r['accuracy_max']:.2%} | "
              f"{r['min_cosine_min']:.4f} |")


if __name__ == "__main__":
    main()
