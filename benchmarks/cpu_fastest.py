"""The fastest faithful VAN on this CPU: vanexport's ONNX Runtime and OpenVINO paths against OpenVINO FP32 run by
hand on the same file, PyTorch eager, and this machine's compute floor, side by side in one run.

Every row runs in its own fresh process (load, warm-up, timed calls on rotating distinct input batches); rounds
alternate the rows, each round in another order, so a busy spell of the (shared) machine hits every row alike.
The compute floor (vanexport/bench/floor.py: 2 x multiply-accumulates / the FP32 MatMul peak through ONNX Runtime)
is measured in each round too, in its own process, and its best is used. Reported per row: p10 / p50 / p90 of all
timed calls, the median of the rounds' p50s, the ratio to OpenVINO FP32 by hand on the same file (median of the
per-round ratios), the share of the compute floor (floor / p50), start-up, and fidelity against PyTorch FP32.

Rows (VAN-b0, random weights seed 0, 224x224):
  torch            PyTorch eager FP32
  ort_before       ONNX Runtime on the export as it was before (onnxsim with all its passes: half the GELUs unfused)
  ort              ONNX Runtime as vanexport opens it, on `vanexport onnx`'s default export
  ort_folded       the same on the deploy form (`vanexport onnx --fold`)
  ov_hand          OpenVINO FP32 "by hand": core.compile_model(file, "CPU", {INFERENCE_PRECISION_HINT: f32}),
                   one infer request, on the default export ...
  ov_hand_folded   ... and on the deploy form
  ov_folded        vanexport's OpenVINO backend, FP32, deploy form
  ov_bf16_folded   vanexport's OpenVINO backend, BF16 (where the CPU has it; not faithful: its error is shown)
With --sweep, batch 1 only, the choices behind the defaults (docs/benchmarks.md#onnx-runtime-session-options):
  ort_extended, ort_1thread, ort_nospin, ort_parallel   ONNX Runtime session options vanexport does not use
  ort_saved        ONNX Runtime on its own saved optimised graph, loaded without optimising again (start-up)
  ov_cached        vanexport's OpenVINO backend with its compiled-model cache, as predict runs it (start-up)
  ort_ts20, ort_dynamo18, ort_dynamo20                  the other exporters and opsets (dynamo cannot write 17)
Finally an operator-type profile (ONNX Runtime's profiler, one more process) of the fastest faithful project row.

    PYTHONPATH=. python benchmarks/cpu_fastest.py             # the published run; writes results/cpu_fastest.json
    PYTHONPATH=. python benchmarks/cpu_fastest.py --sweep     # with the choices behind the defaults
    PYTHONPATH=. python benchmarks/cpu_fastest.py --rounds 2 --iters 20 --batches 1   # a quick look
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
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
VARIANT, IMG = "b0", 224
CORES = os.cpu_count() or 1
QUIET = 0.10  # a round is "quiet" when other work took under 10 % of the cores while it ran
MAIN = {  # name: (runner, file, options)
    "torch": ("torch", None, {}),
    "ort_before": ("ort", "before", {}),
    "ort": ("ort", "default", {}),
    "ort_folded": ("ort", "folded", {}),
    "ov_hand": ("ov_hand", "default", {}),
    "ov_hand_folded": ("ov_hand", "folded", {}),
    "ov_folded": ("ov", "folded", {"precision": "fp32"}),
    "ov_bf16_folded": ("ov", "folded", {"precision": "bf16"}),
}
SWEEP = {
    "ort_extended": ("ort_options", "default", {"level": "extended"}),
    "ort_1thread": ("ort_options", "default", {"threads": 1}),
    "ort_nospin": ("ort_options", "default", {"spinning": False}),
    "ort_parallel": ("ort_options", "default", {"parallel": True}),
    "ort_saved": ("ort_options", "saved", {"level": "disable"}),
    "ov_cached": ("ov", "folded", {"precision": "fp32", "cache": True}),
    "ort_ts20": ("ort", "ts20", {}),
    "ort_dynamo18": ("ort", "dynamo18", {}),
    "ort_dynamo20": ("ort", "dynamo20", {}),
}
FAITHFUL_PROJECT_ROWS = ("ort", "ort_folded", "ov_folded")  # vanexport's own FP32 paths
HAND_ON_SAME_FILE = {"ort": "ov_hand", "ort_folded": "ov_hand_folded", "ov_folded": "ov_hand_folded"}


# --- one row, in its own process ----------------------------------------------------------------------------------

def _ort_session_with(path, level="all", threads=None, spinning=None, parallel=False):
    """An ONNX Runtime session with options vanexport does not choose (the --sweep rows)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                                     "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                     "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    if threads:
        opts.intra_op_num_threads = threads
    if spinning is not None:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if parallel:
        opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": x})[0]


def _ov_by_hand(path):
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})[0].copy()


def load_runner(runner: str, path, options: dict):
    """(callable x -> logits, what it is)."""
    if runner == "torch":
        import torch

        from vanexport.model.factory import load_model
        from vanexport.runtime.torch_backend import TorchBackend

        model, _, _ = load_model(VARIANT, None, seed=0, quiet=True)
        return TorchBackend(model), {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if runner == "ort":
        import onnxruntime

        from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path), {"onnxruntime": onnxruntime.__version__}
    if runner == "ort_options":
        return _ort_session_with(path, **options), {"options": options}
    if runner == "ov_hand":
        import openvino

        return _ov_by_hand(path), {"openvino": openvino.__version__}
    if runner == "ov":
        from vanexport.runtime.openvino_backend import OpenVinoBackend

        cache = Path(path).parent / "openvino_cache" if options.get("cache") else None
        backend = OpenVinoBackend(path, precision=options["precision"], cache_dir=cache)
        cached = {"loaded_from_cache": str(backend.compiled.get_property("LOADED_FROM_CACHE"))} if cache else {}
        return backend, {"ran": backend.precision_note, **cached}
    raise ValueError(runner)


def worker(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    result: dict = {"status": "ok"}
    try:
        if spec["runner"] == "floor":
            from vanexport.bench.floor import matmul_peak_gflops

            result["matmul_gflops"] = matmul_peak_gflops(2048)
        else:
            pool = np.load(spec["inputs"])
            t0 = time.perf_counter()
            run, result["info"] = load_runner(spec["runner"], spec["file"], spec["options"])
            result["load_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            outputs = [np.asarray(run(pool[0]), np.float32)]
            result["first_call_ms"] = (time.perf_counter() - t0) * 1e3
            outputs += [np.asarray(run(x), np.float32) for x in pool[1:]]
            np.save(spec["outputs"], np.stack(outputs))
            for i in range(spec["warmup"]):
                run(pool[i % len(pool)])
            samples = []
            for i in range(spec["iters"]):
                x = pool[i % len(pool)]
                t0 = time.perf_counter()
                run(x)
                samples.append((time.perf_counter() - t0) * 1e3)
            result["samples_ms"] = samples
    except Exception as e:  # the row fails, the benchmark goes on
        result = {"status": "failed", "reason": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"}
    Path(spec["result"]).write_text(json.dumps(result))


def _busy_seconds() -> float:
    """CPU seconds this machine has spent on anything (all processes, interrupts, and time the hypervisor stole)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_wait: float) -> float:
    """Wait (up to max_wait s) until other work uses under QUIET of the cores for a second; the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_wait:
        busy = _busy_seconds()
        time.sleep(1.0)
        if (_busy_seconds() - busy) / CORES < QUIET:
            break
    return time.monotonic() - t0


def run_row(name: str, runner: str, path, options: dict, pool_path: Path, batch: int, args, work: Path) -> dict:
    """One row in a fresh process, after waiting for a quiet machine; records how much of the cores other work
    took while it ran (its CPU time against everything the machine did)."""
    stem = work / f"{name}_bs{batch}_{time.monotonic_ns()}"
    spec = {"runner": runner, "file": str(path) if path else None, "options": options, "inputs": str(pool_path),
            "outputs": f"{stem}_out.npy", "result": f"{stem}.json", "warmup": args.warmup,
            "iters": args.iters if batch == 1 else max(10, args.iters * 3 // 10)}
    Path(f"{stem}_spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                                       os.environ.get("PYTHONPATH", "")]))
    waited = wait_for_quiet(args.quiet_wait)
    busy, t0 = _busy_seconds(), time.monotonic()
    with open(f"{stem}.log", "w") as log:
        child = subprocess.Popen([sys.executable, __file__, "--worker", f"{stem}_spec.json"], env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    wall, own = time.monotonic() - t0, usage.ru_utime + usage.ru_stime
    foreign = max(0.0, (_busy_seconds() - busy - own) / (wall * CORES))
    if not Path(spec["result"]).exists():
        tail = Path(f"{stem}.log").read_text().strip()[-300:]
        return {"status": "failed", "reason": f"the process died ({os.waitstatus_to_exitcode(status)}): {tail}"}
    result = json.loads(Path(spec["result"]).read_text()) | {"foreign_cpu": foreign, "waited_s": waited}
    if result["status"] == "ok" and runner != "floor":
        result["outputs"] = np.load(spec["outputs"])
    return result


# --- the files ----------------------------------------------------------------------------------------------------

def make_files(work: Path, sweep: bool) -> dict[str, Path]:
    """Every ONNX file the rows run, exported and checked by vanexport (the "before" file: onnxsim as it was)."""
    import onnx
    import onnxsim

    from vanexport.export.onnx import export_onnx

    files = {"default": work / "van_b0_224.onnx", "folded": work / "van_b0_224_folded.onnx",
             "before": work / "van_b0_224_before.onnx"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights, on purpose
        export_onnx(VARIANT, img_size=IMG, output=files["default"])
        export_onnx(VARIANT, img_size=IMG, output=files["folded"], fold=True)
        unsimplified = work / "unsimplified.onnx"
        export_onnx(VARIANT, img_size=IMG, output=unsimplified, simplify=False, validate=False)
        onnx.save(onnxsim.simplify(onnx.load(str(unsimplified)), check_n=0)[0], str(files["before"]))
        if sweep:
            import onnxruntime as ort

            files["saved"] = work / "van_b0_224_ort_optimized.onnx"
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.optimized_model_filepath = str(files["saved"])
            ort.InferenceSession(str(files["default"]), opts, providers=["CPUExecutionProvider"])
            for name, exporter, opset in (("ts20", "torchscript", 20), ("dynamo18", "dynamo", 18),
                                          ("dynamo20", "dynamo", 20)):
                files[name] = work / f"van_b0_224_{name}.onnx"
                export_onnx(VARIANT, img_size=IMG, output=files[name], exporter=exporter, opset=opset)
    return files


def op_counts(path: Path) -> dict:
    import onnx

    counts: dict = defaultdict(int)
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] += 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# --- the operator-type profile ------------------------------------------------------------------------------------

def _conv_kind(attrs: dict, weight_shape) -> str:
    kernel = list(attrs.get("kernel_shape") or weight_shape[2:])
    if list(attrs.get("strides", [1, 1])) != [1, 1]:
        return "Conv patch embedding (strided)"
    if kernel == [1, 1]:
        return "Conv 1x1 (dense)"
    if attrs.get("group", 1) > 1:
        dilated = ", dilated" if list(attrs.get("dilations", [1, 1])) != [1, 1] else ""
        return f"Conv depthwise {kernel[0]}x{kernel[1]}{dilated}"
    return f"Conv {kernel[0]}x{kernel[1]}"


def _onnx_conv_kinds(path) -> dict:
    """ONNX node name -> what the convolution computes."""
    import onnx
    from onnx import helper

    graph = onnx.load(str(path)).graph
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    return {n.name: _conv_kind({a.name: helper.get_attribute_value(a) for a in n.attribute},
                               shapes.get(n.input[1], [0, 0, 0, 0]))
            for n in graph.node if n.op_type in ("Conv", "FusedConv")}


def profile_worker(spec_path: str) -> None:
    """Kernel time per operator type and run: ONNX Runtime's profiler (as vanexport opens the file) or OpenVINO's
    per-layer counters (PERF_COUNT, FP32)."""
    spec = json.loads(Path(spec_path).read_text())
    pool = np.load(spec["inputs"])
    ms: dict = defaultdict(float)
    if spec["runner"] == "ov":
        import openvino as ov

        kinds = _onnx_conv_kinds(spec["file"])
        compiled = ov.Core().compile_model(spec["file"], "CPU", {"PERF_COUNT": True, "PERFORMANCE_HINT": "LATENCY",
                                                                 "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        request.infer({0: pool[0]})
        for i in range(spec["iters"]):
            request.infer({0: pool[i % len(pool)]})
            for layer in request.get_profiling_info():  # node names: the ONNX node's, plus OpenVINO's suffixes
                kind = kinds.get(layer.node_name.split("/WithoutBiases")[0], layer.node_type)
                ms[kind] += layer.real_time.total_seconds() * 1e3 / spec["iters"]
        graph = {}
    else:
        import onnx
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(spec["result"]).with_suffix(""))
        opts.optimized_model_filepath = str(Path(spec["result"]).with_suffix(".optimized.onnx"))
        session = ort.InferenceSession(spec["file"], opts, providers=["CPUExecutionProvider"])
        session.run(None, {"input": pool[0]})
        session.end_profiling()  # the first call (allocations) is not profiled
        session = ort.InferenceSession(spec["file"], opts, providers=["CPUExecutionProvider"])
        for i in range(spec["iters"]):
            session.run(None, {"input": pool[i % len(pool)]})
        events = json.loads(Path(session.end_profiling()).read_text())
        optimized = onnx.load(opts.optimized_model_filepath).graph
        kinds = _onnx_conv_kinds(opts.optimized_model_filepath)  # names after ONNX Runtime's fusions
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                name = e["name"][:-len("_kernel_time")]
                ms[kinds.get(name, e["args"].get("op_name", "?"))] += e["dur"] / 1e3 / spec["iters"]
        graph = _count(optimized)
    from vanexport.bench.floor import layer_costs

    kinds, macs = _onnx_conv_kinds(spec["file"]), defaultdict(int)
    for layer in layer_costs(spec["file"], batch=len(pool[0])):  # the file's convolutions, by what they compute
        macs[kinds.get(layer["name"], layer["op"])] += layer["macs"]
    total = sum(ms.values())
    Path(spec["result"]).write_text(json.dumps({
        "runner": spec["runner"], "kernel_ms_per_run": total, "optimized_graph": graph,
        "by_type": [{"type": k, "ms": v, "share": v / total, "gmacs": macs[k] / 1e9 if k in macs else None,
                     "gflops": 2 * macs[k] / (v * 1e6) if k in macs else None}
                    for k, v in sorted(ms.items(), key=lambda kv: -kv[1]) if v > 0]}))


def _count(graph) -> dict:
    counts: dict = defaultdict(int)
    for node in graph.node:
        counts[f"{node.domain + '::' if node.domain else ''}{node.op_type}"] += 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# --- the run ------------------------------------------------------------------------------------------------------

def summarize(name: str, results: list[dict], reference: np.ndarray, batch: int) -> dict:
    """Latency over the quiet rounds (all rounds when none was quiet), the rounds' p50s, fidelity, start-up."""
    ok = [r for r in results if r["status"] == "ok"]
    if not ok:
        return {"row": name, "status": "failed", "reason": results[0].get("reason")}
    quiet = [r for r in ok if r["foreign_cpu"] < QUIET] or ok
    samples = np.concatenate([r["samples_ms"] for r in quiet])
    p10, p50, p90 = (float(v) for v in np.percentile(samples, [10, 50, 90]))
    out = ok[0]["outputs"].reshape(-1, reference.shape[-1])
    ref = reference.reshape(-1, reference.shape[-1])
    cosine = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    return {"row": name, "status": "ok", "batch": batch, "n": int(samples.size), "p10": p10, "p50": p50, "p90": p90,
            "quiet_rounds": sum(r["foreign_cpu"] < QUIET for r in ok),
            "rounds": len(results), "all_rounds_p50": float(np.median(np.concatenate([r["samples_ms"] for r in ok]))),
            "round_p50": [float(np.median(r["samples_ms"])) for r in ok],
            "fast_state_p50": fast_state(ok), "round_load_s": [round(r["load_s"], 3) for r in ok],
            "round_quiet": [bool(r["foreign_cpu"] < QUIET) for r in ok],
            "round_foreign_cpu": [round(r["foreign_cpu"], 3) for r in ok],
            "images_per_s": batch * 1e3 / float(samples.mean()),
            "load_s": float(np.median([r["load_s"] for r in ok])),
            "first_call_ms": float(np.median([r["first_call_ms"] for r in ok])),
            "max_abs_err": float(np.abs(out - ref).max()), "min_cosine": float(cosine.min()),
            "top1_agree": float((out.argmax(1) == ref.argmax(1)).mean()), "info": ok[0]["info"],
            "failed_rounds": len(results) - len(ok)}


def fast_state(rounds: list[dict]) -> dict:
    """The shared host here flips between a fast state and one ~1.4x slower that this VM cannot see (no foreign
    CPU): the median p50 of the rounds within 10 % of the row's best round, and how many there were."""
    p50s = sorted(float(np.median(r["samples_ms"])) for r in rounds)
    fast = [v for v in p50s if v <= 1.1 * p50s[0]]
    return {"p50": float(np.median(fast)), "rounds": len(fast)}


def paired_ratio(base: dict, row: dict) -> float:
    """Median over rounds of base p50 / row p50, over the rounds quiet for both (all rounds when there are none).
    Rows of one round ran minutes apart at most, in the same machine state as far as alternation can make it."""
    pairs = list(zip(base["round_p50"], row["round_p50"], base["round_quiet"], row["round_quiet"]))
    quiet = [(b, r) for b, r, qb, qr in pairs if qb and qr] or [(b, r) for b, r, _, _ in pairs]
    return float(np.median([b / r for b, r in quiet]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", metavar="JSON", help="print the tables and targets of a saved run again")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--profile-worker", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--iters", type=int, default=100, help="timed calls per row and round at batch 1 (30 %% at 8)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--sweep", action="store_true", help="also the session options and exporters not chosen")
    ap.add_argument("--quiet-wait", type=float, default=60.0,
                    help="seconds to wait, before each row, for other work to leave the cores (default 60)")
    ap.add_argument("--note", default="", help="recorded with the results")
    ap.add_argument("--out", default=str(RESULTS / "cpu_fastest.json"))
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker)
    if args.profile_worker:
        return profile_worker(args.profile_worker)
    if args.report:
        return report(json.loads(Path(args.report).read_text()))

    from vanexport.bench import floor
    from vanexport.bench.run import bench_environment, input_pool
    from vanexport.model.factory import load_model
    from vanexport.model.variants import get_variant
    from vanexport.runtime.torch_backend import TorchBackend

    env = bench_environment(None)
    argv = [a for i, a in enumerate(sys.argv[1:]) if "--out" not in (a, sys.argv[i]) and not a.startswith("--out=")]
    record = {"command": "PYTHONPATH=. python benchmarks/cpu_fastest.py " + shlex.join(argv),
              "note": args.note, "environment": env, "settings": vars(args) | {"variant": VARIANT, "img_size": IMG}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("• exporting the files (each checked against PyTorch)", flush=True)
        files = make_files(work, args.sweep)
        record["files"] = {k: {"ops": op_counts(p), "bytes": p.stat().st_size} for k, p in files.items()}
        model, _, _ = load_model(VARIANT, None, seed=0, quiet=True)
        preprocess = get_variant(VARIANT).preprocessing.at_size(IMG)
        record["batches"] = {}
        for batch in (int(b) for b in args.batches.split(",")):
            rows = dict(MAIN) | (SWEEP if args.sweep and batch == 1 else {})
            pool = input_pool(preprocess, batch, seed=0)
            pool_path = work / f"pool_bs{batch}.npy"
            np.save(pool_path, pool)
            reference = np.stack([TorchBackend(model)(x) for x in pool])
            results: dict = defaultdict(list)
            names = list(rows) + ["floor"]
            for r in range(args.rounds):
                order = names[r % len(names):] + names[:r % len(names)]  # each round starts elsewhere
                order = order if r % 2 == 0 else order[::-1]  # and every other round runs backwards
                for name in order:
                    runner, file, options = rows.get(name, ("floor", None, {}))
                    print(f"[bs{batch} round {r + 1}/{args.rounds}] {name}", flush=True)
                    results[name].append(run_row(name, runner, files.get(file), options, pool_path, batch, args,
                                                 work))
            gflops = [res["matmul_gflops"] for res in results.pop("floor") if res["status"] == "ok"]
            floors = floor.floors_ms(floor.layer_costs(files["default"], batch=batch), max(gflops),
                                     floor.bandwidth_gbs(4 * 2**20))
            summary = {name: summarize(name, res, reference, batch) for name, res in results.items()}
            for name, row in summary.items():
                if row["status"] != "ok":
                    continue
                row["floor_share"] = floors["compute_floor_ms"] / row["p50"]
                row["roofline_share"] = floors["roofline_floor_ms"] / row["p50"]
                hand = summary.get(HAND_ON_SAME_FILE.get(name, ""))
                if hand and hand["status"] == "ok":
                    row["vs_ov_hand_same_file"] = paired_ratio(hand, row)
            record["batches"][str(batch)] = {"floor": {**floors, "matmul_gflops_per_round": gflops,
                                                       "gmacs_per_image": floors["gmacs"] / batch},
                                             "rows": summary, "targets": targets(summary, floors)}
            print(markdown(summary, batch, floors), flush=True)
            print(targets_markdown(record["batches"][str(batch)]["targets"], batch), flush=True)
        first = record["batches"][args.batches.split(",")[0]]["rows"]
        fastest = [min((n for n in FAITHFUL_PROJECT_ROWS if n.startswith(kind) and first[n]["status"] == "ok"),
                       key=lambda n: first[n]["p50"]) for kind in ("ort", "ov")]
        print(f"• operator profiles of {' and '.join(fastest)}", flush=True)
        record["profile"] = profile(fastest, files, work, args)
        print(profile_markdown(record["profile"]), flush=True)
    record["environment"]["load_average_end"] = round(os.getloadavg()[0], 2)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"• wrote {out}")


def targets(summary: dict, floors: dict) -> dict:
    """The issue's targets, judged on this run for each of vanexport's FP32 paths: no slower than OpenVINO FP32 by
    hand on the same file (by p50, by the paired per-round ratio and by the fast-state p50: all three), and at least
    70 % of the compute floor (by p50)."""
    rows = {}
    for name in FAITHFUL_PROJECT_ROWS:
        row, hand = summary.get(name), summary.get(HAND_ON_SAME_FILE[name])
        if not (row and hand and row["status"] == hand["status"] == "ok"):
            continue
        t = {"p50_ms": row["p50"], "ov_hand_p50_ms": hand["p50"], "p50_ratio": hand["p50"] / row["p50"],
             "paired_ratio": row["vs_ov_hand_same_file"],
             "fast_state_ratio": hand["fast_state_p50"]["p50"] / row["fast_state_p50"]["p50"],
             "compute_floor_share": row["floor_share"],
             "fast_state_floor_share": floors["compute_floor_ms"] / row["fast_state_p50"]["p50"]}
        t["no_slower_than_ov_hand"] = all(t[k] >= 1.0 for k in ("p50_ratio", "paired_ratio", "fast_state_ratio"))
        t["at_least_70_percent_of_floor"] = t["compute_floor_share"] >= 0.70
        rows[name] = t
    best = min(rows, key=lambda k: summary[k]["fast_state_p50"]["p50"])
    return {"best_project_row": best, "compute_floor_ms": floors["compute_floor_ms"], "rows": rows}


def targets_markdown(t: dict, batch: int) -> str:
    lines = [f"targets, batch {batch} (best: {t['best_project_row']}):"]
    for name, r in t["rows"].items():
        lines.append(f"  {name}: x OV FP32 by hand on its file {r['p50_ratio']:.2f} (p50), {r['paired_ratio']:.2f} "
                     f"(paired), {r['fast_state_ratio']:.2f} (fast state) -> "
                     f"{'met' if r['no_slower_than_ov_hand'] else 'NOT met'}; compute floor share "
                     f"{r['compute_floor_share']:.0%} (fast state {r['fast_state_floor_share']:.0%}) -> "
                     f"{'met' if r['at_least_70_percent_of_floor'] else 'NOT met'}")
    return "\n".join(lines)


def profile(rows: list[str], files: dict, work: Path, args) -> dict:
    """The operator-type profile of each row (an ONNX Runtime and an OpenVINO row), each batch, fresh processes."""
    out = {}
    for name in rows:
        runner, file, _ = MAIN[name]
        for batch in (int(b) for b in args.batches.split(",")):
            result = work / f"profile_{name}_bs{batch}.json"
            spec = {"runner": runner, "file": str(files[file]), "inputs": str(work / f"pool_bs{batch}.npy"),
                    "iters": 50 if batch == 1 else 10, "result": str(result)}
            result.with_suffix(".spec.json").write_text(json.dumps(spec))
            subprocess.run([sys.executable, __file__, "--profile-worker", str(result.with_suffix(".spec.json"))],
                           check=True, env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)))
            out[f"{name} bs{batch}"] = json.loads(result.read_text())
    return out


def markdown(summary: dict, batch: int, floors: dict) -> str:
    lines = [f"\nVAN-b0, batch {batch}: compute floor {floors['compute_floor_ms']:.2f} ms "
             f"(roofline {floors['roofline_floor_ms']:.2f} ms)",
             "| row | p50 ms (quiet rounds) | p10 / p90 ms | fast-state p50 (rounds) | x OV FP32 by hand, same file "
             "| share of compute floor | max abs err | start-up s |", "|---|---|---|---|---|---|---|---|"]
    for name, r in summary.items():
        if r["status"] != "ok":
            lines.append(f"| {name} | failed: {r['reason']} |")
            continue
        vs = f"{r['vs_ov_hand_same_file']:.2f}x" if "vs_ov_hand_same_file" in r else ""
        lines.append(f"| {name} | {r['p50']:.2f} ({r['quiet_rounds']}/{r['rounds']}) | {r['p10']:.2f} / {r['p90']:.2f} "
                     f"| {r['fast_state_p50']['p50']:.2f} ({r['fast_state_p50']['rounds']}) | {vs} "
                     f"| {r['floor_share']:.0%} | {r['max_abs_err']:.1e} "
                     f"| {r['load_s']:.2f} |")
    return "\n".join(lines)


def report(record: dict) -> None:
    print(f"{record['command']}\n{record['environment']['cpu']}, {record['environment']['date']}; {record['note']}")
    for batch, b in record["batches"].items():
        print(markdown(b["rows"], int(batch), b["floor"]))
        print(targets_markdown(targets(b["rows"], b["floor"]), int(batch)))
    print(profile_markdown(record["profile"]))


def profile_markdown(profiles: dict) -> str:
    lines = []
    for label, p in profiles.items():
        top = ", ".join(f"{t['type']} {t['share']:.0%}" + (f" ({t['gflops']:.0f} GFLOP/s)" if t["gflops"] else "")
                        for t in p["by_type"][:8])
        lines.append(f"{label} ({p['runner']}, {p['kernel_ms_per_run']:.2f} ms of kernels per run): {top}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
