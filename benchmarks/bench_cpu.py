"""PyTorch eager vs ONNX Runtime (FP32 and FP16 ONNX) on this CPU, side by side in one run, and the floor.

1. This machine's ceilings through ONNX Runtime: FP32 MatMul peak (2048^3) and element-wise bandwidth
   (4 MiB, cache-resident), measured before and after the benchmark (the best of the two is the ceiling).
2. `vanexport.bench.benchmark` for VAN b0, b1, b2 at batch 1 and 8 (each row in its own fresh process), on
   vanexport's random weights (seed 0): speed does not depend on the values, which are finite in every variant.
3. The ONNX Runtime b0 batch-1 latency as a fraction of the compute floor (2 x MACs / MatMul peak) and of
   the per-layer roofline floor (vanexport/bench/floor.py).

Writes benchmarks/results/bench_cpu.{json,csv,md,png} and prints the markdown table.

    PYTHONPATH=. python benchmarks/bench_cpu.py                     # the published run
    PYTHONPATH=. python benchmarks/bench_cpu.py --precision fp32,fp16,int8 --calib DIR   # INT8 too
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from vanexport.bench import floor
from vanexport.bench.output import write_csv, write_json, write_plot
from vanexport.bench.run import benchmark
from vanexport.export.onnx import export_onnx

RESULTS = Path(__file__).parent / "results"


def ceilings(threads) -> dict:
    return {"matmul_gflops": floor.matmul_peak_gflops(2048, threads),
            "bandwidth_gbs_4mib": floor.bandwidth_gbs(4 * 2**20, threads),
            "bandwidth_gbs_256mib": floor.bandwidth_gbs(256 * 2**20, threads, repeats=5)}


def markdown(rows: list[dict]) -> str:
    lines = ["| model | batch | backend | p50 ms | p90 ms | p99 ms | mean ± std ms | images/s | × PyTorch | top-1 agree | max abs err | peak RSS MiB | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lat, fid = r["latency_ms"], r["fidelity"]
        if not lat:
            lines.append(f"| {r['variant']} | {r['batch']} | {r['label']} | | | | | | | | | | {r['status']}: {r['reason']} |")
            continue
        flag = " (unstable)" if lat["unstable"] else ""
        lines.append(f"| {r['variant']} | {r['batch']} | {r['label']} | {lat['p50']:.1f}{flag} | {lat['p90']:.1f} | "
                     f"{lat['p99']:.1f} | {lat['mean']:.1f} ± {lat['std']:.1f} | {lat['images_per_s']:.1f} | "
                     f"{r['speedup']:.2f}x | {fid['top1_agree']:.0%} | {fid['max_abs_err']:.1e} | "
                     f"{r['peak_rss_mib']:.0f} | {r['status']} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="b0,b1,b2")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--precision", default="fp32,fp16", help="add int8 with --calib DIR")
    ap.add_argument("--calib", help="calibration images for INT8 rows")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--threads", type=int, help="default: each library's own (all cores)")
    ap.add_argument("--note", default="", help="recorded with the results (e.g. 'machine shared with other jobs')")
    ap.add_argument("--out", default=str(RESULTS / "bench_cpu"), help="output path without suffix")
    args = ap.parse_args()

    before = ceilings(args.threads)
    print(f"ceilings before: {json.dumps({k: round(v, 1) for k, v in before.items()})}", flush=True)
    reports = []
    for variant in args.variants.split(","):  # one benchmark call per variant, each with its own report
        reports.append(benchmark([variant], None, backends=["torch", "onnxruntime"], precisions=args.precision,
                                 batches=[int(b) for b in args.batches.split(",")], device="cpu",
                                 warmup=args.warmup, iters=args.iters, threads=args.threads, calib=args.calib,
                                 progress=lambda m: print(f"• {m}", flush=True),
                                 on_row=lambda done, total, label: print(f"[{done}/{total}] {label}", flush=True)
                                 ).to_dict())
    after = ceilings(args.threads)
    print(f"ceilings after: {json.dumps({k: round(v, 1) for k, v in after.items()})}", flush=True)
    best = {k: max(before[k], after[k]) for k in before}

    record = {**reports[0], "rows": [r for rep in reports for r in rep["rows"]],
              "warnings": [w for rep in reports for w in rep["warnings"]],
              "settings": {**reports[0]["settings"], "variants": args.variants.split(","),
                           "weights": "random (seed 0)"}}
    record["environment"]["load_average_end"] = reports[-1]["environment"]["load_average_end"]
    ort_b0 = next((r for r in record["rows"] if r["variant"] == "b0" and r["batch"] == 1
                   and r["label"] == "onnxruntime cpu fp32" and r["latency_ms"]), None)
    if ort_b0:
        with tempfile.TemporaryDirectory() as tmp:  # the same graph the benchmark ran (weights do not change MACs)
            path = export_onnx("b0", output=Path(tmp) / "b0.onnx", validate=False).path
            costs = floor.layer_costs(path, batch=1)
        floors = floor.floors_ms(costs, best["matmul_gflops"], best["bandwidth_gbs_4mib"])
        p50 = ort_b0["latency_ms"]["p50"]
        floors.update({"onnxruntime_b0_bs1_p50_ms": p50,
                       "compute_floor_fraction": floors["compute_floor_ms"] / p50,
                       "roofline_floor_fraction": floors["roofline_floor_ms"] / p50})
    else:
        floors = None
    record["ceilings"] = {"before": before, "after": after, "best": best,
                          "method": "ONNX Runtime CPU provider, same threads as the benchmark, best of repeats"}
    record["floor"] = floors
    record["note"] = args.note
    record["command"] = "PYTHONPATH=. python " + " ".join(sys.argv)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(record, out.with_suffix(".json"))
    write_csv(record, out.with_suffix(".csv"))
    write_plot(record, out.with_suffix(".png"))
    table = markdown([r for r in record["rows"] if r["status"] != "skipped"])
    env = record["environment"]
    header = (f"{env['cpu']}, {env['usable_cores']} cores, threads {env['threads']}; torch {env['packages'].get('torch')}, "
              f"onnxruntime {env['packages'].get('onnxruntime')}; {args.warmup} warm-up + {args.iters} timed calls "
              f"per row, each row in a fresh process; load average {env['load_average_start']} at start, "
              f"{env['load_average_end']} at end; {env['date']}" + (f". {args.note}" if args.note else ""))
    text = f"{header}\n\n{table}\n"
    if floors:
        text += (f"\nCeilings (ONNX Runtime, best of before/after): MatMul 2048^3 {best['matmul_gflops']:.0f} GFLOP/s, "
                 f"element-wise {best['bandwidth_gbs_4mib']:.0f} GB/s (4 MiB), {best['bandwidth_gbs_256mib']:.0f} GB/s "
                 f"(256 MiB).\nVAN-b0 = {floors['gmacs']:.3f} GMAC. ONNX Runtime b0 batch 1: p50 {floors['onnxruntime_b0_bs1_p50_ms']:.2f} ms; "
                 f"compute floor {floors['compute_floor_ms']:.2f} ms ({floors['compute_floor_fraction']:.0%} of the "
                 f"latency); per-layer roofline floor {floors['roofline_floor_ms']:.2f} ms "
                 f"({floors['roofline_floor_fraction']:.0%}; {floors['memory_bound_layers']} of {floors['layers']} "
                 f"layers memory-bound).\n")
    for w in record["warnings"]:
        text += f"\nwarning: {w}"
    out.with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
