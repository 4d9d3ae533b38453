"""A benchmark record as files: JSON, CSV (one line per row, the environment repeated on each) and a PNG plot."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import VanexportError
from ..files import atomic_output

# Flat columns, in this order. Latency is host latency; compute_* are GPU compute-only times.
CSV_COLUMNS = (
    "variant", "batch", "img_size", "backend", "device", "provider", "precision", "status", "reason", "size_mb",
    "p50_ms", "p90_ms", "p99_ms", "min_ms", "mean_ms", "std_ms", "max_ms", "n_iters", "spread", "unstable",
    "images_per_s", "compute_p50_ms", "compute_mean_ms", "speedup", "speedup_baseline", "speedup_baseline_unstable",
    "top1_agree", "top5_agree", "max_abs_err", "min_cosine", "n_compared", "accuracy", "reference_accuracy",
    "fidelity_failures", "peak_rss_mib", "rss_before_mib",
    "gpu_memory_mib", "threads", "cpu", "usable_cores", "gpu", "torch", "onnxruntime", "tensorrt", "date",
)


def csv_rows(report: dict) -> list[dict]:
    env = report["environment"]
    pkgs = env["packages"]
    shared = {"cpu": env["cpu"], "usable_cores": env["usable_cores"],
              "gpu": "; ".join(g["name"] for g in env["gpus"]) or None, "torch": pkgs.get("torch"),
              "onnxruntime": pkgs.get("onnxruntime") or pkgs.get("onnxruntime-gpu"), "tensorrt": pkgs.get("tensorrt"),
              "date": env["date"]}
    out = []
    for r in report["rows"]:
        lat, comp, fid, gpu = r["latency_ms"] or {}, r["compute_ms"] or {}, r["fidelity"] or {}, r["gpu_memory"] or {}
        line = {k: r.get(k) for k in ("variant", "batch", "img_size", "backend", "device", "provider", "precision",
                                      "status", "reason", "size_mb", "images_per_s", "speedup", "speedup_baseline",
                                      "speedup_baseline_unstable", "peak_rss_mib", "rss_before_mib", "threads")}
        acc = fid.get("accuracy") or {}
        line.update({f"{k}_ms": lat.get(k) for k in ("p50", "p90", "p99", "min", "mean", "std", "max")})
        line.update(n_iters=lat.get("n"), spread=lat.get("spread"), unstable=lat.get("unstable"),
                    compute_p50_ms=comp.get("p50"), compute_mean_ms=comp.get("mean"),
                    top1_agree=fid.get("top1_agree"), top5_agree=fid.get("top5_agree"),
                    max_abs_err=fid.get("max_abs_err"), min_cosine=fid.get("min_cosine"), n_compared=fid.get("n"),
                    accuracy=acc.get("candidate"), reference_accuracy=acc.get("reference"),
                    fidelity_failures="; ".join(r.get("fidelity_failures") or []) or None,
                    gpu_memory_mib=gpu.get("process_mib"), **shared)
        out.append({k: line.get(k) for k in CSV_COLUMNS})
    return out


def write_csv(report: dict, path) -> Path:
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(csv_rows(report))
    return Path(path)


def write_json(report: dict, path) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return Path(path)


def check_plot_path(path) -> None:
    """Before any slow work: a .png name, and matplotlib there to draw it."""
    import importlib.util

    if Path(path).suffix.lower() != ".png":
        raise VanexportError(f"plot file '{path}' is not a .png", "pass e.g. --plot bench.png")
    if importlib.util.find_spec("matplotlib") is None:
        raise VanexportError("--plot needs matplotlib, which is not installed", "pip install 'vanexport[plot]'")


def plot_series(report: dict) -> dict[str, list[dict]]:
    """What the plot draws, per variant: one series per backend/device/precision label, with its points (batch,
    p50, p90, images/s) and marks: `unstable` (a hollow point), `fidelity_failed` (a red cross). A label whose rows
    failed their fidelity check says so in the legend."""
    out: dict[str, list[dict]] = {}
    timed = [r for r in report["rows"] if r["latency_ms"]]
    for variant in dict.fromkeys(r["variant"] for r in timed):
        rows = [r for r in timed if r["variant"] == variant]
        series = []
        for label in dict.fromkeys(r["label"] for r in rows):
            line = sorted((r for r in rows if r["label"] == label), key=lambda r: r["batch"])
            points = [{"batch": r["batch"], "p50": r["latency_ms"]["p50"], "p90": r["latency_ms"]["p90"],
                       "images_per_s": r["images_per_s"], "unstable": bool(r["latency_ms"]["unstable"]),
                       "fidelity_failed": r["status"] == "validation failed"} for r in line]
            marks = [m for m, flag in (("fidelity failed", "fidelity_failed"), ("unstable", "unstable"))
                     if any(p[flag] for p in points)]
            series.append({"label": label + (f" ({', '.join(marks)})" if marks else ""), "points": points})
        out[variant] = series
    return out


def write_plot(report: dict, path) -> Path:
    """Latency (p50, with p90 as the error bar's top) vs batch size: one panel per variant, one line per
    backend/device/precision; throughput beside it. Unstable points are hollow, points whose row failed its
    fidelity check carry a red cross (see `plot_series`)."""
    check_plot_path(path)
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    panels = plot_series(report)
    if not panels:
        raise VanexportError("nothing to plot: no row ran", "see the reasons in the table")
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 3.8 * len(panels)), squeeze=False)
    for (ax_lat, ax_tput), (variant, series) in zip(axes, panels.items()):
        batches = sorted({p["batch"] for s in series for p in s["points"]})
        for s in series:
            pts = s["points"]
            bs = [p["batch"] for p in pts]
            bar = [[0] * len(pts), [p["p90"] - p["p50"] for p in pts]]
            line = ax_lat.errorbar(bs, [p["p50"] for p in pts], yerr=bar, capsize=3, label=s["label"])[0]
            ax_tput.plot(bs, [p["images_per_s"] for p in pts], color=line.get_color(), label=s["label"])
            for ax, key in ((ax_lat, "p50"), (ax_tput, "images_per_s")):
                for p in pts:
                    ax.plot(p["batch"], p[key], marker="o", color=line.get_color(),
                            markerfacecolor="none" if p["unstable"] else line.get_color())
                    if p["fidelity_failed"]:
                        ax.plot(p["batch"], p[key], marker="x", markersize=11, color="red")
        for ax, ylabel in ((ax_lat, "latency p50 (ms), bar to p90"), (ax_tput, "images / s")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(batches, [str(b) for b in batches])
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("batch size")
            ax.set_ylabel(ylabel)
            ax.set_title(f"VAN-{variant}: " + ("latency" if ax is ax_lat else "throughput"))
            ax.grid(True, which="both", alpha=0.3)
        ax_lat.legend(fontsize=8)
    env = report["environment"]
    gpu = ", ".join(g["name"] for g in env["gpus"]) or "no GPU"
    fig.suptitle(f"{env['cpu']} ({env['usable_cores']} cores), {gpu}; {env['date'][:10]}. "
                 "Hollow point: unstable timing; red cross: failed its fidelity check", fontsize=9)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
