"""Time `vanexport onnx --variant b0` (export + simplify + validate) end to end, as a user runs it.

Each repeat is a fresh process (imports included), timed from outside; peak memory is the child's
max RSS. Writes benchmarks/results/export_time.json and prints a summary.

    python benchmarks/export_time.py [--repeats 5] [--variant b0]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(variant: str, out: Path) -> dict:
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "vanexport", "onnx", "--variant", variant, "-o", str(out), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stdout = proc.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"vanexport failed:\n{proc.stderr.read()}")
    record = json.loads(stdout)
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "stages_s": record["seconds"],
            "validation_passed": record["validation"]["passed"], "max_abs_err": record["validation"]["overall"]["max_abs_err"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="b0")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "export_time.json"))
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            runs.append(run_once(args.variant, Path(tmp) / f"m{i}.onnx"))
            print(f"run {i + 1}: {runs[-1]['wall_s']:.2f} s, peak RSS {runs[-1]['peak_rss_mib']:.0f} MiB", file=sys.stderr)
    walls = sorted(r["wall_s"] for r in runs)
    summary = {
        "command": f"vanexport onnx --variant {args.variant}",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "repeats": args.repeats,
        "wall_s": {"min": walls[0], "median": statistics.median(walls), "max": walls[-1]},
        "peak_rss_mib_max": max(r["peak_rss_mib"] for r in runs),
        "stages_s_median": {k: statistics.median(r["stages_s"][k] for r in runs) for k in runs[0]["stages_s"]},
        "target_s": 15.0,
        "runs": runs,
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("command", "wall_s", "peak_rss_mib_max", "stages_s_median")}, indent=2))


if __name__ == "__main__":
    main()
