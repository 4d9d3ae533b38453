"""One GPU smoke run: every TensorRT line of vanexport once, on this machine's GPU, into one JSON report.

    make smoke-gpu        # = python benchmarks/smoke_gpu.py -o benchmarks/results/smoke_gpu.json

On the trained digits VAN-b0 (vanexport.zoo.digits: trains once, ~1 min; `--digits DIR` reuses a prepared one):
strongly typed FP32/FP16/INT8 builds validated against PyTorch, reuse, inspect with per-layer precisions, a static
min-batch-4 profile, same-compute-capability and version-compatible builds (loaded with host code), weak typing
(10.x) or its refusal (11.x), a foreign and a corrupt timing cache, DLA (refused on a discrete GPU), bundle ->
`trt --bundle` -> predict with the plan, bench rows for TensorRT and ONNX Runtime's TensorRT provider, and
`--device 1` where there are two GPUs. Before those, what needs only the GPU: the driver's view of it against
PyTorch's, device memory, streams and copies through libcuda (runtime/cuda.py), and bench's PyTorch CUDA rows.
Each line is recorded ok / failed (with the error) / skipped (with why); one failure does not stop the others.
Without TensorRT the TensorRT lines are recorded as skipped with the reason; without a GPU it says so and writes
nothing (exit 0).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np


class Skip(Exception):
    pass


class Smoke:
    def __init__(self):
        self.steps: list[dict] = []
        self.state: dict = {}
        self.unavailable: str | None = None  # set: every later line is recorded as skipped, with this reason

    def step(self, name: str, fn) -> None:
        t0 = time.perf_counter()
        row = {"name": name}
        try:
            if self.unavailable:
                raise Skip(self.unavailable)
            row.update(status="ok", details=fn() or {})
        except Skip as e:
            row.update(status="skipped", reason=str(e))
        except Exception as e:  # a line that fails is recorded, and the run goes on
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            row.update(status="failed", error=f"{type(e).__name__}: {first}"[:500],
                       traceback=traceback.format_exc()[-3000:])
        row["seconds"] = round(time.perf_counter() - t0, 2)
        print(f"{row['status']:>7}  {name}  ({row['seconds']} s)"
              + (f": {row.get('error') or row.get('reason')}" if row["status"] != "ok" else ""), flush=True)
        self.steps.append(row)


@contextlib.contextmanager
def inside(folder):
    """The chain writes into ./engines: run it in a folder of its own (contextlib.chdir is 3.11+; JetPack 6 has 3.10)."""
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(Path(__file__).parent / "results" / "smoke_gpu.json"))
    ap.add_argument("--digits", help="a folder made by `python -m vanexport.zoo.digits` [default: made now]")
    ap.add_argument("--bench-seconds", type=float, default=1.0)
    args = ap.parse_args(argv)

    from vanexport.errors import VanexportError
    from vanexport.machine import cuda_gpu, gpus, host_platform, import_tensorrt, tensorrt_version

    try:
        gpu = cuda_gpu(0)
    except VanexportError as e:
        print(f"skipped: needs an NVIDIA GPU: {e}")
        return 0
    smoke = Smoke()
    try:
        trt = import_tensorrt()
    except VanexportError as e:
        trt = None
        print(f"TensorRT is missing, its lines will be skipped: {e}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, inside(tmp):
        run_cuda(smoke, args)
        if trt is None:
            smoke.unavailable = "TensorRT is not installed"
        run_all(smoke, trt, gpu, Path(tmp), args)
    report = {
        "what": "vanexport GPU smoke run (benchmarks/smoke_gpu.py)",
        "tensorrt": tensorrt_version(trt) if trt else None, "gpus": gpus(), "platform": host_platform().to_dict(),
        "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "summary": {s: sum(r["status"] == s for r in smoke.steps) for s in ("ok", "failed", "skipped")},
        "steps": smoke.steps,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"{report['summary']} -> {args.output}")
    return 1 if report["summary"]["failed"] else 0


def torch_cuda():
    """PyTorch, when it is installed and sees a GPU; else None (the TensorRT lines need neither)."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def run_cuda(smoke: Smoke, args) -> None:
    """The lines that need a GPU but not TensorRT."""
    from vanexport.machine import gpus
    from vanexport.runtime import cuda

    def driver_view():
        found, torch = gpus(), torch_cuda()
        if torch:
            seen = [{"name": p.name, "compute_capability": f"{p.major}.{p.minor}", "integrated": bool(p.is_integrated),
                     "memory_gib": round(p.total_memory / 2**30, 1)}
                    for p in map(torch.cuda.get_device_properties, range(torch.cuda.device_count()))]
            mine = [{k: g[k] for k in ("name", "compute_capability", "integrated", "memory_gib")} for g in found]
            expect(mine == seen, f"the driver says {mine}, PyTorch says {seen}")
        return {"gpus": found, "checked_against_pytorch": bool(torch)}

    smoke.step("the GPUs through the CUDA driver API, as PyTorch sees them", driver_view)

    def memory():
        nbytes = 64 << 20
        x = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8)
        y = np.zeros_like(x)
        seconds = {}
        with cuda.Device(0) as dev:
            stream, buf = dev.stream(), dev.alloc(nbytes)
            for direction, copy, host in (("host_to_device", buf.copy_from, x), ("device_to_host", buf.copy_to, y)):
                t0 = time.perf_counter()
                copy(host, stream)
                stream.synchronize()
                seconds[direction] = time.perf_counter() - t0
            buf.close()
            stream.close()
        expect(np.array_equal(x, y), "64 MiB came back changed")
        return {"bytes": nbytes, **{f"{d}_gb_per_s": round(nbytes / t / 1e9, 2) for d, t in seconds.items()},
                "note": "pageable host memory, one copy each way"}

    smoke.step("device memory, a stream and copies through libcuda (runtime/cuda.py)", memory)

    def bench():
        if not torch_cuda():
            raise Skip("PyTorch here has no CUDA")
        out = Path("bench_torch_cuda.json").resolve()
        r = subprocess.run([sys.executable, "-m", "vanexport", "bench", "--variant", "b0", "--backends", "torch,ort",
                            "--precision", "fp32,fp16", "--batch", "1,8", "--seconds", str(args.bench_seconds),
                            "--json", str(out)], capture_output=True, text=True, timeout=1800)
        expect(out.is_file(), "bench wrote no report: " + ((r.stderr.strip().splitlines() or ["no output"])[-1]))
        rows = json.loads(out.read_text())["rows"]
        ran = {row["label"] for row in rows if row["status"] in ("ok", "validation failed")}
        expect({"torch cuda fp32", "torch cuda fp16"} <= ran, f"PyTorch CUDA rows ran: {sorted(ran)}")
        keep = ("label", "batch", "status", "reason", "latency_ms", "compute_ms", "speedup", "fidelity", "gpu_memory",
                "threads")
        return {"exit_code": r.returncode, "rows": [{k: row.get(k) for k in keep} for row in rows]}

    smoke.step("bench rows: PyTorch on CUDA (FP32, FP16 autocast) beside the CPU rows, VAN-b0 at 224", bench)


def run_all(smoke: Smoke, trt, gpu, work: Path, args) -> None:
    from vanexport.errors import VanexportError
    from vanexport.formats.engine_manifest import manifest_path
    from vanexport.inspection import inspect_file
    from vanexport.machine import gpus
    from vanexport.pipeline import export_trt
    from vanexport.runtime.batching import batch_limits, run_batched
    from vanexport.runtime.tensorrt_backend import TensorRTBackend
    from vanexport.trt.build import build_engine
    from vanexport.trt.settings import BuildSettings
    from vanexport.trt.timing_cache import key_path

    s = smoke.state

    def digits():
        from vanexport.zoo.digits import given_or_prepared

        root = given_or_prepared(args.digits, work).resolve()
        # no weights passed anywhere: every check finds them from what the ONNX file records
        s["digits"] = {"onnx": str(root / "van_b0_64.onnx"), "calib": str(root / "calib"),
                       "heldout": str(root / "heldout")}
        from vanexport.data.images import load_folder
        from vanexport.formats.onnx_metadata import read_metadata

        s["meta"] = read_metadata(s["digits"]["onnx"])
        s["x"] = load_folder(s["digits"]["heldout"], s["meta"].preprocess).array
        return {"heldout_images": len(s["x"])}

    smoke.step("prepare the trained digits VAN-b0", digits)
    if "digits" not in s:
        smoke.unavailable = smoke.unavailable or "no trained digits model (the line above did not run)"
    dg = s.get("digits", {})

    def builds():
        out, progress = {}, []
        for p in ("fp32", "fp16", "int8"):
            r = export_trt(dg["onnx"], precision=p, images=dg["heldout"],
                           calib=dg["calib"] if p == "int8" else None, progress=progress.append)
            m = r.engine["manifest"]
            expect(m["tensorrt"]["typing"] == "strong" and r.engine["validation"]["passed"], f"{p} validated")
            s[p] = r.engine["path"]
            out[p] = {"plan_bytes": m["plan"]["bytes"], "build_s": m["build"]["seconds"],
                      "overall": r.engine["validation"].get("overall"), "accuracy": r.engine["validation"].get("accuracy")}
        expect(any(line.startswith("TensorRT: ") for line in progress), "the progress monitor reported phases")
        out["progress_phases"] = sorted({line for line in progress if line.startswith("TensorRT: ")})
        return out

    smoke.step("strongly typed FP32, FP16, INT8 builds validated against PyTorch", builds)

    def reuse():
        r = export_trt(dg["onnx"], precision="fp16", images=dg["heldout"])
        expect(r.engine["reused"], "the FP16 plan was reused")
        cache = Path(r.engine["manifest"]["build"]["timing_cache"])
        expect(cache.stat().st_size > 0 and key_path(cache).is_file(), "a non-empty timing cache with its key")
        return {"timing_cache_bytes": cache.stat().st_size, "key": json.loads(key_path(cache).read_text())}

    smoke.step("reuse of a current plan, timing cache and key", reuse)

    def inspect():
        out = {}
        for p in ("fp32", "fp16", "int8"):
            if p not in s:
                raise Skip(f"no {p} plan")
            d = inspect_file(s[p]).details
            precisions = sorted({x for row in d["layers"] for x in row["precision"].split(",") if x})
            out[p] = {"layers": len(d["layers"]), "precisions": precisions}
        expect("fp16" in out["fp16"]["precisions"] and "fp16" not in out["fp32"]["precisions"], "FP16 layers shown")
        expect("int8" in out["int8"]["precisions"], "INT8 layers shown")
        return out

    smoke.step("inspect: per-layer precisions (execution context at the opt shapes)", inspect)

    def reference():
        if "fp32" not in s:
            raise Skip("no FP32 plan")
        with TensorRTBackend(s["fp32"]) as b:
            return run_batched(b, s["x"][:20], 8)

    def min_batch_4():
        plan = work / "engines" / "min4.plan"
        r = build_engine(dg["onnx"], BuildSettings(min_batch=4, opt_batch=4, max_batch=4), plan, images=dg["heldout"])
        with TensorRTBackend(plan) as b:
            size, low = batch_limits(None, b.profile)
            y = run_batched(b, s["x"][:10], size, low)  # 4 + 4 + 2 padded to 4
        diff = float(np.abs(y - reference()[:10]).max())
        expect(diff <= 1e-3, f"min-batch-4 plan agrees with the FP32 plan ({diff})")
        return {"profile": r.manifest["inputs"][0]["profile"], "max_abs_vs_fp32_plan": diff,
                "validation": r.validation["overall"] if r.validation else None}

    smoke.step("a static min-batch-4 profile (validation and predict pad the last chunk)", min_batch_4)

    def compat(settings: BuildSettings, name: str):
        def run():
            plan = work / "engines" / f"{name}.plan"
            r = build_engine(dg["onnx"], settings, plan, images=dg["heldout"])
            with TensorRTBackend(plan) as b:
                y = run_batched(b, s["x"][:20], 8)
                warnings = list(b.warnings)
            diff = float(np.abs(y - reference()).max())
            expect(diff <= 1e-3, f"{name} plan agrees with the FP32 plan ({diff})")
            return {"tensorrt": r.manifest["tensorrt"], "max_abs_vs_fp32_plan": diff, "warnings": warnings}
        return run

    if trt is None or hasattr(trt.HardwareCompatibilityLevel, "SAME_COMPUTE_CAPABILITY"):
        smoke.step("same-compute-capability build", compat(BuildSettings(hw_compat="same-cc"), "samecc"))
    else:
        smoke.step("same-compute-capability build", lambda: (_ for _ in ()).throw(
            Skip(f"TensorRT {trt.__version__} has no SAME_COMPUTE_CAPABILITY (10.9+)")))
    smoke.step("version-compatible build, loaded with host code",
               compat(BuildSettings(version_compatible=True), "vc"))

    def weak():
        settings = BuildSettings(precision="fp16", weak_typing=True)
        if hasattr(trt.BuilderFlag, "FP16"):
            r = build_engine(dg["onnx"], settings, work / "engines" / "weak.plan", images=dg["heldout"])
            expect(r.manifest["tensorrt"]["typing"] == "weak" and r.validation["passed"], "weak FP16 validated")
            return {"typing": "weak", "overall": r.validation["overall"]}
        try:
            build_engine(dg["onnx"], settings, work / "engines" / "weak.plan")
        except VanexportError as e:
            expect("has no weak typing" in str(e), "the refusal names weak typing")
            return {"refused": str(e)}
        raise AssertionError("TensorRT 11 built a weakly typed engine")

    smoke.step("weak typing (10.x) or its refusal (11.x)", weak)

    def foreign_cache():
        plan = work / "foreign" / "m.plan"
        plan.parent.mkdir()
        cache = plan.parent / "timing.cache"
        cache.write_bytes(b"\0" * 64)
        key_path(cache).write_text(json.dumps({"tensorrt": trt.__version__, "compute_capability": "1.0"}))
        r1 = build_engine(dg["onnx"], BuildSettings(), plan, validate=False)
        expect(any("not used" in w for w in r1.warnings), "a cache keyed for another GPU is not used")
        expect(cache.read_bytes() != b"\0" * 64 and json.loads(key_path(cache).read_text())["compute_capability"]
               == gpu.compute_capability, "replaced by this build's own, keyed for this GPU")
        garbage = b"not a timing cache at all" * 4
        cache.write_bytes(garbage)
        key_path(cache).unlink()  # unkeyed: TensorRT's own check decides
        r2 = build_engine(dg["onnx"], BuildSettings(), plan, validate=False)
        expect(cache.stat().st_size > 0 and cache.read_bytes() != garbage, "replaced, never emptied")
        return {"keyed_elsewhere": [w for w in r1.warnings if "cache" in w],
                "corrupt": [w for w in r2.warnings if "cache" in w], "cache_bytes": cache.stat().st_size}

    smoke.step("a foreign timing cache and a corrupt one", foreign_cache)

    def dla():
        try:
            build_engine(dg["onnx"], BuildSettings(precision="fp16", weak_typing=True, dla_core=0),
                         work / "engines" / "dla.plan", validate=False)
        except VanexportError as e:
            expect(not gpu.integrated, f"refused on a Jetson: {e}")
            return {"refused": str(e)}
        expect(gpu.integrated, "a DLA plan was built on a discrete GPU")
        return {"built": True, "placement": json.loads(manifest_path(work / "engines" / "dla.plan")
                                                       .read_text())["build"]["placement"]}

    smoke.step("DLA: refused on a discrete GPU (built on a Jetson)", dla)

    def bundle_build_predict():
        from vanexport.device.classify import predict
        from vanexport.ship.bundle import make_bundle
        from vanexport.ship.on_device import build_into_bundle

        bundle = work / "van_digits.tar.gz"
        make_bundle(model=dg["onnx"], precisions=("fp32", "fp16"), images=dg["heldout"], output=bundle)
        built = build_into_bundle(bundle, BuildSettings(precision="fp16"))
        expect(built["check"]["passed"], "the plan built from the bundle passed its check")
        images = sorted(Path(dg["heldout"]).rglob("*.png"))[:16]
        with_plan = predict(images, bundle)
        expect(with_plan.backend["backend"] == "tensorrt", f"predict used {with_plan.backend}")
        on_cpu = predict(images, bundle, backend="onnxruntime-cpu")
        agree = float(np.mean([a["top"][0]["index"] == b["top"][0]["index"]
                               for a, b in zip(with_plan.predictions, on_cpu.predictions)]))
        # the same through the CLI, in a process where PyTorch cannot be imported
        code = ("import importlib.abc, sys\n"
                "class B(importlib.abc.MetaPathFinder):\n"
                "    def find_spec(self, n, p=None, t=None):\n"
                "        if n.split('.')[0] in ('torch', 'onnx', 'polygraphy'): raise ImportError(n)\n"
                "sys.meta_path.insert(0, B())\n"
                "from vanexport.cli import main\n"
                f"sys.argv = ['vanexport', 'predict', *{[str(p) for p in images]!r}, '--model', {str(bundle)!r}, "
                "'--json']\nmain()\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        expect(r.returncode == 0, f"predict without torch: {r.stderr[-500:]}")
        expect(json.loads(r.stdout)["backend"]["backend"] == "tensorrt", "predict without torch used the plan")
        return {"check": built["check"]["overall"], "predict_backend": with_plan.backend,
                "top1_agreement_with_ort_cpu": agree, "without_torch": "tensorrt"}

    smoke.step("bundle -> trt --bundle -> predict with the plan (also without PyTorch)", bundle_build_predict)

    def bench():
        out = work / "bench.json"
        r = subprocess.run([sys.executable, "-m", "vanexport", "bench", "--variant", "b0", "--backends", "trt,ort",
                            "--precision", "fp32,fp16", "--batch", "1,8", "--img-size", "64", "--device", "cuda",
                            "--seconds", str(args.bench_seconds), "--json", str(out)],
                           capture_output=True, text=True, timeout=1800)
        expect(out.is_file(), "bench wrote no report: " + ((r.stderr.strip().splitlines() or ["no output"])[-1]))
        rows = json.loads(out.read_text())["rows"]
        keep = ("label", "batch", "precision", "status", "reason", "latency_ms", "fidelity")
        table = [{k: row.get(k) for k in keep} for row in rows]
        labels = {row["label"] for row in rows if row["status"] == "ok"}
        expect(any("tensorrt cuda" in lbl for lbl in labels), f"a TensorRT row ran: {sorted(labels)}")
        expect(any("trt-ep" in lbl.lower() for lbl in labels), f"an ONNX Runtime TensorRT provider row ran: "
               f"{sorted(labels)}")
        return {"rows": table}

    smoke.step("bench rows: TensorRT and ONNX Runtime's TensorRT provider", bench)

    def second_gpu():
        if len(gpus()) < 2:
            raise Skip("one GPU")
        plan = work / "engines" / "dev1.plan"
        r = build_engine(dg["onnx"], BuildSettings(), plan, device=1, images=dg["heldout"])
        expect(r.manifest["gpu"]["index"] == 1, "built on device 1")
        with TensorRTBackend(plan, device=1) as b:
            diff = float(np.abs(run_batched(b, s["x"][:20], 8) - reference()).max())
        return {"gpu": r.manifest["gpu"], "max_abs_vs_device_0": diff}

    smoke.step("--device 1: built and run on the second GPU", second_gpu)


if __name__ == "__main__":
    sys.exit(main())
