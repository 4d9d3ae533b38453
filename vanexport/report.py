"""Human-readable reports of the records the API returns (the --json output is the record itself)."""
from __future__ import annotations

import json
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
    c.print(f"Validation of {report['model']} against {report['reference']} ({report.get('runtime', 'ONNX Runtime CPU')}):")
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


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def _profile(inp: dict) -> str:
    p = inp.get("profile")
    if not p:
        return _shape(inp["shape"])
    return f"min {_shape(p['min'])}, opt {_shape(p['opt'])}, max {_shape(p['max'])}"


def _manifest_lines(m: dict) -> list[str]:
    t, g = m["tensorrt"], m["gpu"]
    lines = [f"  {m['precision'].upper()} engine, TensorRT {t['version']} ({t.get('typing', 'strong')}ly typed"
             + (", version-compatible" if t.get("version_compatible") else "")
             + f", hardware compatibility {t.get('hardware_compatibility', 'none')}"
             + (f", DLA core {t['dla_core']}" if t.get("dla_core") is not None else "") + ")",
             f"  built on {g['name']} (compute capability {g['compute_capability']})"
             + (f" in {m['build']['seconds']:.1f} s" if m["build"].get("seconds") is not None else "")
             + (f" at {m['build']['built_at']}" if m["build"].get("built_at") else "")]
    for i in m["inputs"]:
        lines.append(f"  input '{i['name']}' {i['dtype']}: {_profile(i)}")
    for o in m["outputs"]:
        lines.append(f"  output '{o['name']}' {o['dtype']} {_shape(o['shape'])} ({m['num_classes']} classes)")
    src = m["source_onnx"]
    lines.append(f"  from {src['path']} (sha256 {src['sha256'][:12]}); VAN-{m['model'].get('variant', '?')}, "
                 f"weights {m['model'].get('weights_source', '?')}")
    return lines


def render_trt(r: dict) -> None:
    c = _console()
    e = r["engine"]
    m = e["manifest"]
    c.print(f"VAN-{m['model'].get('variant', '?')} -> [bold]{e['path']}[/bold] ({_size(e['path'])}, sha256 "
            f"{e['sha256'][:12]})" + ("  [dim]reused[/dim]" if e["reused"] else ""))
    c.print("  chain: " + " -> ".join(f"{a['stage']} {a['path']} ({'reused' if a['reused'] else 'made'})"
                                      for a in r["artifacts"]))
    for line in _manifest_lines(m):
        c.print(line)
    c.print(f"  manifest: {e['manifest_path']}")
    v = e.get("validation")
    if v and "groups" in v:
        c.print(validation_table(v))
        c.print(_verdict(v))
    elif v:
        o = v["overall"]
        c.print(f"  validated when built: max abs {o['max_abs_err']:.2e}, min cosine {o['min_cosine']:.6f}, "
                f"top-1 {o['top1_agree']:.1%}")
    if e.get("seconds"):
        c.print("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in e["seconds"].items()))


def render_inspect(r: dict) -> None:
    from rich.table import Table

    c = _console()
    d = r["details"]
    c.print(f"[bold]{r['path']}[/bold]: {r['kind']}, {r['bytes'] / 1e6:.1f} MB, sha256 {r['sha256'][:12]}")
    if r["kind"] == "onnx":
        c.print(f"  producer {d['producer'] or '?'}, IR {d['ir_version']}, opsets "
                + ", ".join(f"{k} {v}" for k, v in d["opsets"].items()))
        for label, tensors in (("input", d["inputs"]), ("output", d["outputs"])):
            for t in tensors:
                c.print(f"  {label} '{t['name']}' {t['dtype']} {_shape(t['shape'])}")
        c.print(f"  {d['parameters']:,} parameters ("
                + ", ".join(f"{k} {v}" for k, v in d["weight_dtypes"].items()) + f" tensors), {d['nodes']} nodes")
        c.print("  ops: " + ", ".join(f"{k} {v}" for k, v in d["op_histogram"].items()))
        for k, v in d["metadata"].items():
            c.print(f"  [dim]{k}[/dim] = {v if isinstance(v, str) else json.dumps(v)}")
    elif d.get("manifest"):
        for line in _manifest_lines(d["manifest"]):
            c.print(line)
        c.print("  plan hash matches its manifest" if d["hash_ok"] else "  [red]plan hash does not match its manifest[/red]")
        if d.get("layers"):
            t = Table(show_edge=False, pad_edge=False, header_style="bold")
            for col in ("#", "layer", "type", "precision", "tactic"):
                t.add_column(col, overflow="fold")
            for i, row in enumerate(d["layers"]):
                t.add_row(str(i), row["name"], row["type"], row["precision"], row["tactic"])
            c.print(t)
    for note in r["notes"]:
        c.print(f"  [yellow]note:[/yellow] {note}")
