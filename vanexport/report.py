"""Human-readable reports of the records the API returns (the --json output is the record itself)."""
from __future__ import annotations

import os


def _console(min_width: int | None = None):
    """`min_width`: for wide tables, the width used when output goes to a file or pipe (not a terminal)."""
    from rich.console import Console

    c = Console(highlight=False, soft_wrap=True)
    if min_width and not c.is_terminal:
        c = Console(highlight=False, soft_wrap=True, width=max(c.width, min_width))
    return c


def _size(path: str) -> str:
    try:
        return f"{os.path.getsize(path) / 1e6:.1f} MB"
    except OSError:
        return "?"


def validation_table(report: dict):
    from rich.table import Table

    t = Table(show_edge=False, pad_edge=False, header_style="bold")
    for col in ("inputs", "n", "max abs", "max rel", "min cosine", "top-1", "top-5"):
        t.add_column(col, justify="left" if col == "inputs" else "right")
    rows = report["groups"] + [{"group": "all", **report["overall"]}]
    for r in rows:
        t.add_row(r["group"], str(r["n"]), f"{r['max_abs_err']:.2e}", f"{r['max_rel_err']:.2e}",
                  f"{r['min_cosine']:.6f}", f"{r['top1_agree']:.1%}", f"{r['top5_agree']:.1%}")
    return t


def _verdict(report: dict) -> str:
    tol = report["tolerance"]
    rule = f"max abs <= {tol['atol']:.0e}" + (f" or max rel <= {tol['rtol']:.0e}" if tol["rtol"] else "")
    if report["passed"]:
        return f"[green]PASS[/green] ({report['precision'].upper()}: {rule}; Polygraphy agrees)"
    return f"[red]FAIL[/red] ({report['precision'].upper()}): " + "; ".join(report["failures"])


def render_validation(report: dict) -> None:
    c = _console()
    c.print(f"Validation of {report['model']} against {report['reference']} (ONNX Runtime CPU):")
    c.print(validation_table(report))
    c.print(_verdict(report))


def render_export(r: dict) -> None:
    c = _console()
    shape = "x".join(str(d) for d in r["input_shape"])
    w = r["weights"]
    c.print(f"VAN-{r['variant']} -> [bold]{r['path']}[/bold] ({_size(r['path'])}, sha256 {r['sha256'][:12]})")
    c.print(f"  input 'input' {shape} float32 -> 'logits' ({w['num_classes']} classes); opset {r['opset']}, "
            f"{r['exporter']} exporter, " + ("simplified" if r["simplified"] else f"not simplified ({r['simplify_note'] or 'off'})"))
    c.print(f"  weights: {w['source']} ({w['layout']} layout, sha256 {w['sha256'][:12]})"
            + ("  [yellow]random: outputs are meaningless[/yellow]" if w["random"] else ""))
    if r["validation"]:
        c.print(validation_table(r["validation"]))
        c.print(_verdict(r["validation"]))
    s = r["seconds"]
    c.print("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in s.items()))


def render_info(d: dict) -> None:
    c = _console()
    c.print(f"python {d['python']} on {d['platform']}")
    for name, ver in d["packages"].items():
        c.print(f"  {name:<16} {ver or '[dim]not installed[/dim]'}")
    c.print(f"ONNX Runtime providers: {', '.join(d['onnxruntime_providers']) or 'none'}")
    if d["gpus"]:
        for g in d["gpus"]:
            c.print(f"GPU {g['index']}: {g['name']} (compute capability {g['compute_capability']}, {g['memory_gib']} GiB)")
    else:
        c.print("GPU: none visible to PyTorch")
    for cmd, st in d["commands"].items():
        c.print(f"  vanexport {cmd:<10} " + ("[green]ready[/green]" if st["ok"] else
                                             f"[red]missing {', '.join(st['missing'])}[/red]"))
    for p in d["problems"]:
        c.print(f"[red]problem:[/red] {p}")


def _ms(v: float) -> str:
    return f"{v:.3g}" if v < 10 else f"{v:.1f}"


def bench_table(report: dict):
    """One line per row that ran or failed; skipped rows are summarised under the table by reason."""
    from rich.table import Table

    rows = [r for r in report["rows"] if r["status"] != "skipped"]
    gpu = any(r["compute_ms"] or r["gpu_memory"] for r in rows)
    t = Table(show_edge=False, pad_edge=False, header_style="bold")
    cols = ["model", "bs", "backend", "status", "MB", "p50 ms", "p90", "p99", "mean ± std", "img/s",
            "× torch", "top-1", "max abs", "RSS MiB"] + (["compute p50", "GPU MiB"] if gpu else [])
    for c in cols:
        t.add_column(c, justify="left" if c in ("model", "backend", "status") else "right", no_wrap=True)
    style = {"ok": "green", "validation failed": "yellow", "failed": "red"}
    for r in rows:
        lat, fid = r["latency_ms"], r["fidelity"]
        cells = [r["variant"], str(r["batch"]), r["label"],
                 f"[{style[r['status']]}]{r['status']}[/]", f"{r['size_mb']:.1f}" if r["size_mb"] else "-"]
        if lat:
            mark = "[yellow]~[/]" if lat["unstable"] else ""
            cells += [mark + _ms(lat["p50"]), _ms(lat["p90"]), _ms(lat["p99"]),
                      f"{_ms(lat['mean'])} ± {_ms(lat['std'])}", f"{lat['images_per_s']:.1f}",
                      f"{r['speedup']:.2f}x" if r["speedup"] else "-"]
        else:
            cells += ["-"] * 6
        cells += [f"{fid['top1_agree']:.1%}" if fid else "-", f"{fid['max_abs_err']:.1e}" if fid else "-",
                  f"{r['peak_rss_mib']:.0f}" if r["peak_rss_mib"] else "-"]
        if gpu:
            comp, mem = r["compute_ms"], (r["gpu_memory"] or {}).get("process_mib")
            cells += [_ms(comp["p50"]) if comp else "-", f"{mem:.0f}" if mem else "-"]
        t.add_row(*cells)
    return t


def _skipped_summary(rows: list[dict]) -> list[str]:
    by_reason: dict[str, list[str]] = {}
    for r in rows:
        if r["status"] == "skipped":
            labels = by_reason.setdefault(r["reason"], [])
            if r["label"] not in labels:
                labels.append(r["label"])
    return [f"skipped ({reason}): {', '.join(labels)}" for reason, labels in by_reason.items()]


def render_bench(report: dict) -> None:
    c = _console(min_width=160)
    env, s = report["environment"], report["settings"]
    gpus = ", ".join(g["name"] for g in env["gpus"]) or "no GPU"
    timing = f"{s['iters']} timed calls" if s["iters"] else f"{s['seconds']:g} s (at least 10 calls)"
    c.print(f"VAN benchmark on {env['cpu']} ({env['usable_cores']} cores, threads: {env['threads']}), {gpus}; "
            f"{timing} per row after {s['warmup']} warm-up, each row in a fresh process")
    c.print(bench_table(report))
    c.print("latency: host, numpy in -> numpy out; × torch: PyTorch eager FP32 p50 on the same device / row p50; "
            "top-1 and max abs: vs PyTorch FP32 on the same inputs; RSS: peak of the row's own process")
    for r in report["rows"]:
        if r["status"] in ("failed", "validation failed"):
            colour = "red" if r["status"] == "failed" else "yellow"
            c.print(f"[{colour}]{r['status']}[/]: {r['variant']} bs{r['batch']} {r['label']}: {r['reason']}")
    for line in _skipped_summary(report["rows"]):
        c.print(f"[dim]{line}[/dim]")
    for w in report["warnings"]:
        c.print(f"[yellow]warning:[/yellow] {w}")
