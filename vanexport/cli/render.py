"""Human-readable reports of the records the API returns (the --json output is the record itself).

The records hold outside text (file names, labels, ONNX metadata, messages), so nothing printed here is read as
rich markup or emoji codes, and control characters show as escapes (`vanexport.progress.printable`). Our own
styling is explicit: `styled(text, style)` pieces (rich Text), never markup in a string.
"""
from __future__ import annotations

import json
import os

from ..progress import printable


def _console(min_width: int | None = None):
    """`min_width`: for wide tables, the width used when output goes to a file or pipe (not a terminal)."""
    from rich.console import Console

    class ReportConsole(Console):
        """Every string it prints or puts in a table is plain text, its control characters made visible."""

        def render_str(self, text: str, **kwargs):
            return super().render_str(printable(text), **kwargs)

    options = dict(highlight=False, soft_wrap=True, markup=False, emoji=False)
    c = ReportConsole(**options)
    if min_width and not c.is_terminal:
        c = ReportConsole(width=max(c.width, min_width), **options)
    return c


def styled(text, style: str):
    """`text` (any text, from anywhere) shown in `style`: a rich Text, so never read as markup."""
    from rich.text import Text

    return Text(printable(str(text)), style=style)


def _passed(ok: bool, passed: str = "PASS", failed: str = "FAIL"):
    return styled(passed, "green") if ok else styled(failed, "red")


def _fidelity_line(f: dict | None) -> list:
    """fidelity_summary's line, its verdict coloured."""
    from ..ship.bundle import fidelity_summary

    line = fidelity_summary(f)
    if not f:
        return [line]
    verdict, rest = line.split(" ", 1)
    return [_passed(f["passed"], verdict, verdict), " " + rest]


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


def layout_words(layout: str) -> str:
    """A checkpoint's layout for a person: "official" names the authors' key layout, which a user's own weights
    have too; printed bare, it read as if they were the official weights."""
    if layout == "random":
        return "random weights"
    if layout == "official":
        return "the authors' checkpoint layout"
    return f"{layout} checkpoint layout"


def _rule(tol: dict, labelled: bool = True) -> str:
    """What the verdict checked, and what it could not (a PASS never covers a check that did not run)."""
    rules = []
    if tol.get("check_atol", True):
        rules.append(f"max abs <= {tol['atol']:.0e}" + (f" or max rel <= {tol['rtol']:.0e}" if tol["rtol"] else ""))
    if tol.get("min_top1_agree") is not None:
        rules.append(f"top-1 agreement >= {tol['min_top1_agree']:.1%}")
    if tol.get("min_cosine") is not None:
        rules.append(f"cosine >= {tol['min_cosine']}")
    if tol.get("max_accuracy_drop") is not None and labelled:
        rules.append(f"accuracy drop <= {tol['max_accuracy_drop']} point")
    elif tol.get("max_accuracy_drop") is not None:
        rules.append("accuracy drop: not checked (no labelled images: pass --images with class subfolders)")
    return ", ".join(rules)


def _verdict(report: dict):
    from rich.text import Text

    rule = _rule(report["tolerance"], labelled=report.get("accuracy") is not None)
    if report["passed"]:
        agrees = "; Polygraphy agrees" if report["tolerance"].get("check_atol", True) else ""
        return Text.assemble(_passed(True), printable(f" ({report['precision'].upper()}: {rule}{agrees})"))
    return Text.assemble(_passed(False), printable(f" ({report['precision'].upper()}: {rule}): "
                                                   + "; ".join(report["failures"])))


def _accuracy_line(acc: dict | None) -> str | None:
    if not acc:
        return None
    return (f"accuracy against labels ({acc['n']} images): PyTorch FP32 {acc['reference']:.2%}, "
            f"this model {acc['candidate']:.2%} (drop {acc['drop_points']:+.2f} points)")


def render_validation(report: dict) -> None:
    c = _console()
    c.print(f"Validation of {report['model']} ({report['precision'].upper()}) against {report['reference']} "
            f"FP32 ({report.get('runtime', 'ONNX Runtime CPU')}):")
    c.print(validation_table(report))
    if line := _accuracy_line(report.get("accuracy")):
        c.print(line)
    c.print(_verdict(report))


def render_precision(r: dict) -> None:
    c = _console()
    c.print(f"{r['source']} -> ", styled(r["path"], "bold"), f" ({r['precision'].upper()}, {_size(r['path'])}, "
            f"sha256 {r['sha256'][:12]})", sep="")
    if r["precision"] == "fp16":
        c.print(f"  {r['converted_nodes']} nodes in FP16; kept in FP32: " + (", ".join(r["kept_fp32"]) or "none"))
    else:
        cal = r["calibration"]
        form = "quantized by NNCF for the CPU (OpenVINO)" if cal["method"] == "nncf" else \
            "with INT8 Q/DQ inputs (symmetric, per-channel weights, no bias Q/DQ)"
        c.print(f"  {r['converted_nodes']} Conv/Gemm/MatMul nodes {form}; left unquantized: "
                + (", ".join(r["kept_fp32"]) or "none"))
        c.print(f"  calibration: {cal['method']}, {cal['images']} inputs from {cal['source']}"
                + (f", {cal['skipped']} unreadable skipped" if cal["skipped"] else "")
                + ("" if not cal["cache"] else
                   f"; ranges reused from {cal['cache']}" if cal["cache_hit"] else f"; ranges cached in {cal['cache']}"))
    if r["validation"]:
        c.print(validation_table(r["validation"]))
        if line := _accuracy_line(r["validation"].get("accuracy")):
            c.print(line)
        c.print(_verdict(r["validation"]))
    else:
        c.print("  ", styled("not checked against PyTorch (--no-validate)", "yellow"),
                f": `vanexport validate {r['path']} --images DIR` checks it", sep="")
    c.print("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["seconds"].items()))


def render_sensitivity(r: dict) -> None:
    from rich.table import Table

    c = _console()
    kind = r["precision"].upper()
    how = "each group converted alone" if r["mode"] == "only" else "everything but each group converted"
    c.print(f"{kind} sensitivity of {r['model']} on {r['n_images']} images from {r['images']} "
            f"({len(r['groups'])} groups at depth {r['depth']}, {how}; worst first):")
    labels = "accuracy_drop" in r["baseline"]
    t = Table(show_edge=False, pad_edge=False, header_style="bold")
    for col in ("group", "nodes", "top-1", "mean cosine") + (("acc. drop",) if labels else ()):
        t.add_column(col, justify="left" if col == "group" else "right")

    def cells(name, nodes, row):
        out = [name, str(nodes), f"{row['top1_agree']:.1%}", f"{row['mean_cosine']:.6f}"]
        return out + ([f"{row['accuracy_drop']:+.2f}"] if labels else [])

    shown = r["groups"][:10]
    for row in shown:
        t.add_row(*cells(row["name"], row["nodes"], row))
    t.add_row(*cells(f"whole model {kind}", sum(x["nodes"] for x in r["groups"]), r["baseline"]))
    c.print(t)
    if len(r["groups"]) > len(shown):
        c.print(f"({len(r['groups']) - len(shown)} more groups in --json)")
    flag = "--exclude" if r["precision"] == "int8" else "--keep-fp32"
    if not r["recommended"]:
        c.print(styled(f"the whole model meets the {kind} threshold", "green"), ": nothing to exclude", sep="")
        return
    res = r["recommended_result"]
    verdict = _passed(r["passed"], "meets", "still misses")
    c.print(f"leaving {len(r['recommended'])} group(s) in higher precision ", verdict,
            f" the threshold: top-1 {res['top1_agree']:.1%}, mean cosine {res['mean_cosine']:.6f}"
            + (f", accuracy drop {res['accuracy_drop']:+.2f} points" if labels else ""), sep="")
    c.print("  " + " ".join(f"{flag} '{x}'" for x in r["recommended"]))


def render_export(r: dict) -> None:
    c = _console()
    shape = "x".join(str(d) for d in r["input_shape"])
    w = r["weights"]
    c.print(f"VAN-{r['variant']} -> ", styled(r["path"], "bold"), f" ({_size(r['path'])}, sha256 {r['sha256'][:12]})",
            sep="")
    c.print(f"  input 'input' {shape} float32 -> 'logits' ({w['num_classes']} classes); opset {r['opset']}, "
            f"{r['exporter']} exporter, " + ("simplified" if r["simplified"] else f"not simplified ({r['simplify_note'] or 'off'})"))
    c.print(f"  weights: {w['source']} ({layout_words(w['layout'])}, sha256 {w['sha256'][:12]})",
            *(["  ", styled("random: outputs are meaningless", "yellow")] if w["random"] else []), sep="")
    if r["validation"]:
        c.print(validation_table(r["validation"]))
        c.print(_verdict(r["validation"]))
    s = r["seconds"]
    c.print("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in s.items()))


def render_info(d: dict) -> None:
    c = _console()
    c.print(f"python {d['python']} on {d['platform']}")
    for name, ver in d["packages"].items():
        c.print(f"  {name:<16} ", ver or styled("not installed", "dim"), sep="")
    c.print(f"ONNX Runtime providers: {', '.join(d['onnxruntime_providers']) or 'none'}")
    if d["gpus"]:
        for g in d["gpus"]:
            c.print(f"GPU {g['index']}: {g['name']} (compute capability {g['compute_capability']}, {g['memory_gib']} GiB)")
    else:
        c.print("GPU: none (no NVIDIA driver or no CUDA device)")
    for cmd, st in d["commands"].items():
        c.print(f"  vanexport {cmd:<12} ", _passed(st["ok"], "ready", f"missing {', '.join(st['missing'])}"), sep="")
    for p in d["problems"]:
        c.print(styled("problem:", "red"), p)


def render_bundle(r: dict) -> None:
    c = _console()
    c.print(f"VAN-{r['variant']} bundle -> ", styled(r["path"], "bold"), f" ({r['size_bytes'] / 1e6:.1f} MB, "
            f"sha256 {r['sha256'][:12]}, schema {r['schema_version']})", sep="")
    for m in r["models"]:
        c.print(f"  {m['precision'].upper():<5} {m['file']:<34} ", *_fidelity_line(m["fidelity"]), sep="")
    for e in r["engines"]:
        c.print(f"  {str(e['precision']).upper():<5} {e['file']:<34} TensorRT {e['tensorrt_version']}, "
                f"sm {e['compute_capability']} ({e['gpu_name']})")
    c.print(f"  labels: {r['labels']['count']} from {r['labels']['source']}"
            + ("; timing cache included" if r["timing_cache"] else ""))
    c.print(f"  {len(r['files'])} files, each with its sha256 in manifest.json")


def render_unpack(r: dict) -> None:
    c = _console()
    c.print(f"unpacked {r['bundle']} -> ", styled(r["folder"], "bold"), f": {len(r['files'])} files, every sha256 "
            f"checked (schema {r['schema_version']}, VAN-{r['variant']})", sep="")
    for name in r["files"]:
        c.print(f"  {name}")


def render_predict(r: dict) -> None:
    c = _console()
    b = r["backend"]
    c.print("backend: ", styled(b["backend"], "bold"), f" ({b['precision']}) - {b['reason']}", sep="")
    for s in b["skipped"]:
        c.print("  ", styled(f"not used: {s}", "dim"), sep="")
    for p in r["predictions"]:
        c.print(styled(p["image"], "bold"))
        for t in p["top"]:
            c.print(f"  {t['probability']:7.2%}  {t['label']}  ", styled(f"({t['index']})", "dim"), sep="")


def render_triton(r: dict) -> None:
    c = _console()
    c.print("Triton model repository ", styled(r["repository"], "bold"), f" (configs checked against {r['schema']}):",
            sep="")
    for m in r["models"]:
        cc = f", plans for sm {', '.join(m['cc_model_filenames'])}" if m["cc_model_filenames"] else ""
        kind = "" if m["instance_kind"] == "none" else f", {m['instance_kind'].upper()} instances"
        c.print(f"  {m['name']:<22} {m['platform']:<17} max_batch_size {m['max_batch_size']}{kind}{cc}")
        c.print("    ", styled(", ".join(m["files"]), "dim"), sep="")


def render_deepstream(r: dict) -> None:
    c = _console()
    c.print("DeepStream nvinfer config -> ", styled(r["config"], "bold"), f" ({r['precision'].upper()}, "
            f"network-mode {r['properties']['network-mode']})", sep="")
    c.print(f"  net-scale-factor {r['net_scale_factor']!r}, offsets {';'.join(repr(o) for o in r['offsets'])}")
    c.print(f"  onnx-file {r['onnx']} (softmax appended), labels {r['labels']}")
    if r.get("engine"):
        c.print(f"  model-engine-file {r['engine_file']} (built and checked here: {r['engine']['check']})")
    else:
        c.print(f"  model-engine-file {r['engine_file']} (DeepStream builds it on first run)")
    if r.get("preprocess_config"):
        c.print(f"  centre crop: nvdspreprocess {r['preprocess_config']}, ROI {';'.join(map(str, r['roi']))} "
                "(left;top;width;height)")
        if r.get("probe"):
            c.print(f"  labels stay in the ROI meta: add the pad probe {r['probe']} for OSD and msgconv")
    else:
        c.print("  nvinfer scales the whole frame or object (stretch)")
    if a := r.get("agreement"):
        c.print(f"  top-1 agreement with the validated preprocessing on {a['images']} images: "
                f"centre crop {a['centre-crop']:.1%}, stretch {a['stretch']:.1%} (this config: {a['config']})")


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
    c.print(f"VAN-{m['model'].get('variant', '?')} -> ", styled(e["path"], "bold"), f" ({_size(e['path'])}, sha256 "
            f"{e['sha256'][:12]})", *(["  ", styled("reused", "dim")] if e["reused"] else []), sep="")
    c.print("  chain: " + " -> ".join(f"{a['stage']} {a['path']} ({'reused' if a['reused'] else 'made'})"
                                      for a in r["artifacts"]))
    for line in _manifest_lines(m):
        c.print(line)
    c.print(f"  manifest: {e['manifest_path']}")
    v = e.get("validation")
    if v and "groups" in v:
        c.print(validation_table(v))
        if line := _accuracy_line(v.get("accuracy")):
            c.print(line)
        c.print(_verdict(v))
    elif v and "overall" in v:
        o = v["overall"]
        c.print(f"  validated when built: max abs {o['max_abs_err']:.2e}, min cosine {o['min_cosine']:.6f}, "
                f"top-1 {o['top1_agree']:.1%}")
    if e.get("seconds"):
        c.print("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in e["seconds"].items()))


def render_inspect(r: dict) -> None:
    from rich.table import Table

    c = _console()
    d = r["details"]
    c.print(styled(r["path"], "bold"), f": {r['kind']}, {r['bytes'] / 1e6:.1f} MB, sha256 {r['sha256'][:12]}", sep="")
    if r["kind"] == "bundle":
        _bundle_lines(c, d)
    elif r["kind"] == "onnx":
        c.print(f"  producer {d['producer'] or '?'}, IR {d['ir_version']}, opsets "
                + ", ".join(f"{k} {v}" for k, v in d["opsets"].items()))
        for label, tensors in (("input", d["inputs"]), ("output", d["outputs"])):
            for t in tensors:
                c.print(f"  {label} '{t['name']}' {t['dtype']} {_shape(t['shape'])}")
        c.print(f"  {d['parameters']:,} parameters ("
                + ", ".join(f"{k} {v}" for k, v in d["weight_dtypes"].items()) + f" tensors), {d['nodes']} nodes")
        c.print("  ops: " + ", ".join(f"{k} {v}" for k, v in d["op_histogram"].items()))
        for k, v in d["metadata"].items():
            c.print("  ", styled(k, "dim"), f" = {v if isinstance(v, str) else json.dumps(v)}", sep="")
    elif d.get("manifest"):
        for line in _manifest_lines(d["manifest"]):
            c.print(line)
        c.print("  ", _passed(d["hash_ok"], "plan hash matches its manifest", "plan hash does not match its manifest"),
                sep="")
        if d.get("layers"):
            t = Table(show_edge=False, pad_edge=False, header_style="bold")
            for col in ("#", "layer", "type", "precision", "tactic"):
                t.add_column(col, overflow="fold")
            for i, row in enumerate(d["layers"]):
                t.add_row(str(i), row["name"], row["type"], row["precision"], row["tactic"])
            c.print(t)
    for note in r["notes"]:
        c.print("  ", styled("note:", "yellow"), f" {note}", sep="")


def _bundle_lines(c, d: dict) -> None:
    from ..ship.bundle import fidelity

    w, pre = d["weights"], d["preprocessing"]
    made = d["created_by"].get("vanexport", "?")
    c.print(f"  VAN-{d['variant']}, {d['num_classes']} classes; bundle schema {d['schema_version']}, made by "
            f"vanexport {made} at {d['created_at'] or '?'}; every file checked against manifest.json")
    if d.get("checks"):
        c.print("  verified: " + "; ".join(d["checks"]), markup=False)
    c.print(f"  weights {w.get('source', '?')} ({layout_words(w.get('layout', '?'))}, "
            f"sha256 {str(w.get('sha256'))[:12]})")
    c.print(f"  input '{d['input']['name']}' {_shape(d['input']['shape'])} float32; resize {pre.get('resize_size')}, "
            f"crop {pre.get('input_size')}, mean {pre.get('mean')}, std {pre.get('std')}; labels: "
            f"{d['labels']['count']} from {d['labels']['source']}")
    c.print("  models:")
    for m in d["models"]:
        c.print(f"    {m['precision'].upper():<5} {m['file']:<34} ", *_fidelity_line(fidelity(m["validation"])), sep="")
    if d["engines"]:
        c.print("  engines:")
    for e in d["engines"]:
        entry = e["entry"]
        check = [] if entry.get("validation") is None else [
            " ", _passed(entry["validation"].get("passed", True), "checked", "failed its check")]
        c.print(f"    {entry['file']} (from {entry['source']})", *check, sep="")
        for line in _manifest_lines(e["manifest"]):
            c.print("  " + line)
    c.print(f"  files ({len(d['files'])}):")
    for name, f in d["files"].items():
        c.print(f"    {name:<40} {f['size'] / 1e6:8.2f} MB  sha256 {f['sha256'][:12]}")
    if d.get("timing_cache"):
        c.print(f"  timing cache: {d['timing_cache']}")


def render_device_build(r: dict) -> None:
    c = _console()
    o = r["check"]["overall"]
    c.print(f"{r['engine']} ({r['precision'].upper()}) built on this device and added to ", styled(r["bundle"], "bold"),
            sep="")
    c.print(f"  check vs the bundled ONNX on {o['n']} images: top-1 {o['top1_agree']:.1%}, "
            f"min cosine {o['min_cosine']:.6f}, max abs {o['max_abs_err']:.2e}: ", _passed(True), sep="")
    c.print(f"  build {r['build']['seconds'].get('build', 0):.1f} s; bundle now has "
            f"{len(r['bundle_result']['engines'])} engine(s)")


def _ms(v: float) -> str:
    return f"{v:.3g}" if v < 10 else f"{v:.1f}"


def bench_table(report: dict):
    """One line per row that ran or failed; skipped rows are summarised under the table by reason. Marks: `~` an
    unstable timing, `!` a failed fidelity check, `?` a speed-up against an unstable baseline."""
    from rich.table import Table

    rows = [r for r in report["rows"] if r["status"] != "skipped"]
    gpu = any(r["compute_ms"] or r["gpu_memory"] for r in rows)
    accuracy = any((r["fidelity"] or {}).get("accuracy") for r in rows)
    counts = {r["fidelity"]["n"] for r in rows if r["fidelity"]}
    n = f" n={counts.pop()}" if len(counts) == 1 else ""
    t = Table(show_edge=False, pad_edge=False, header_style="bold")
    cols = ["model", "bs", "backend", "status", "MB", "p50 ms", "p90", "p99", "mean ± std", "img/s",
            "× torch", f"top-1{n}"] + (["acc."] if accuracy else []) + ["max abs", "RSS MiB"] \
        + (["compute p50", "GPU MiB"] if gpu else [])
    for c in cols:
        t.add_column(c, justify="left" if c in ("model", "backend", "status") else "right", no_wrap=True)
    style = {"ok": "green", "validation failed": "yellow", "failed": "red"}
    for r in rows:
        lat, fid = r["latency_ms"], r["fidelity"]
        cells = [r["variant"], str(r["batch"]), r["label"],
                 styled(r["status"], style[r["status"]]), f"{r['size_mb']:.1f}" if r["size_mb"] else "-"]
        if lat:
            mark = styled("~" if lat["unstable"] else "", "yellow")
            shaky = styled("?" if r.get("speedup_baseline_unstable") and r["speedup_baseline"] != r["label"] else "",
                           "yellow")
            cells += [mark + _ms(lat["p50"]), _ms(lat["p90"]), _ms(lat["p99"]),
                      f"{_ms(lat['mean'])} ± {_ms(lat['std'])}", f"{lat['images_per_s']:.1f}",
                      styled(f"{r['speedup']:.2f}x", "") + shaky if r["speedup"] else "-"]
        else:
            cells += ["-"] * 6
        failed = styled("!" if r["status"] == "validation failed" else "", "yellow")
        cells.append(failed + f"{fid['top1_agree']:.1%}" if fid else "-")
        if accuracy:
            acc = (fid or {}).get("accuracy")
            cells.append(f"{acc['candidate']:.1%}" if acc else "-")
        cells += [f"{fid['max_abs_err']:.1e}" if fid else "-", f"{r['peak_rss_mib']:.0f}" if r["peak_rss_mib"] else "-"]
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
    fidelity = s.get("images") or "the sample-photo crops"
    refs = {(r["variant"], r["fidelity"]["accuracy"]["reference"]) for r in report["rows"]
            if (r["fidelity"] or {}).get("accuracy")}
    measured = "top-1 (agreement), acc. and max abs" if refs else "top-1 (agreement) and max abs"
    c.print("latency: host, numpy in -> numpy out; × torch: PyTorch eager FP32 p50 on the same device / row p50; "
            f"{measured}: every image of {fidelity} vs PyTorch FP32; RSS: peak of the row's own process; "
            "~ unstable timing, ! failed its fidelity check, ? speed-up against an unstable baseline")
    for variant, ref in sorted(refs):
        c.print(f"PyTorch FP32 accuracy of VAN-{variant} on these images: {ref:.1%}")
    for r in report["rows"]:
        if r["status"] in ("failed", "validation failed"):
            colour = "red" if r["status"] == "failed" else "yellow"
            c.print(styled(r["status"], colour), f": {r['variant']} bs{r['batch']} {r['label']}: {r['reason']}", sep="")
    for line in _skipped_summary(report["rows"]):
        c.print(styled(line, "dim"))
    for w in report["warnings"]:
        c.print(styled("warning:", "yellow"), w)
