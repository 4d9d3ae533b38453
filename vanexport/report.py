"""Human-readable reports of the records the API returns (the --json output is the record itself)."""
from __future__ import annotations

import os


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


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


def render_bundle(r: dict) -> None:
    c = _console()
    c.print(f"VAN-{r['variant']} bundle -> [bold]{r['path']}[/bold] ({r['size_bytes'] / 1e6:.1f} MB, "
            f"sha256 {r['sha256'][:12]}, schema {r['schema_version']})")
    for m in r["models"]:
        f = m["fidelity"]
        verdict = "not validated" if not f else (("[green]PASS[/green]" if f["passed"] else "[red]FAIL[/red]")
                                                 + f"  max abs {f['max_abs_err']:.2e}, top-1 {f['top1_agree']:.1%}"
                                                 + (f", accuracy {f['accuracy']:.1%}" if "accuracy" in f else "")
                                                 + f" vs {f['reference']} (n={f['n']})")
        c.print(f"  {m['precision'].upper():<5} {m['file']:<34} {verdict}")
    for e in r["engines"]:
        c.print(f"  {str(e['precision']).upper():<5} {e['file']:<34} TensorRT {e['tensorrt_version']}, "
                f"sm {e['compute_capability']} ({e['gpu_name']})")
    c.print(f"  labels: {r['labels']['count']} from {r['labels']['source']}"
            + ("; timing cache included" if r["timing_cache"] else ""))
    c.print(f"  {len(r['files'])} files, each with its sha256 in manifest.json")


def render_unpack(r: dict) -> None:
    c = _console()
    c.print(f"unpacked {r['bundle']} -> [bold]{r['folder']}[/bold]: {len(r['files'])} files, every sha256 checked "
            f"(schema {r['schema_version']}, VAN-{r['variant']})")
    for name in r["files"]:
        c.print(f"  {name}")


def render_predict(r: dict) -> None:
    c = _console()
    b = r["backend"]
    c.print(f"backend: [bold]{b['backend']}[/bold] ({b['precision']}) - {b['reason']}")
    for s in b["skipped"]:
        c.print(f"  [dim]not used: {s}[/dim]")
    for p in r["predictions"]:
        c.print(f"[bold]{p['image']}[/bold]")
        for t in p["top"]:
            c.print(f"  {t['probability']:7.2%}  {t['label']}  [dim]({t['index']})[/dim]")


def render_triton(r: dict) -> None:
    c = _console()
    c.print(f"Triton model repository [bold]{r['repository']}[/bold] (configs checked against {r['schema']}):")
    for m in r["models"]:
        cc = f", plans for sm {', '.join(m['cc_model_filenames'])}" if m["cc_model_filenames"] else ""
        c.print(f"  {m['name']:<22} {m['platform']:<17} max_batch_size {m['max_batch_size']}, "
                f"{m['instance_kind'].upper()} instances{cc}")
        c.print(f"    [dim]{', '.join(m['files'])}[/dim]")


def render_deepstream(r: dict) -> None:
    c = _console()
    c.print(f"DeepStream nvinfer config -> [bold]{r['config']}[/bold] ({r['precision'].upper()}, "
            f"network-mode {r['properties']['network-mode']})")
    c.print(f"  net-scale-factor {r['net_scale_factor']!r}, offsets {';'.join(repr(o) for o in r['offsets'])}")
    c.print(f"  onnx-file {r['onnx']} (softmax appended), labels {r['labels']}")
    c.print(f"  model-engine-file {r['engine_file']} (DeepStream builds it on first run)")
