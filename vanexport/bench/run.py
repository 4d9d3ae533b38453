"""`benchmark()`: latency, throughput, memory and fidelity of every backend and precision, side by side in one run."""
from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import VanexportError
from ..files import work_folder
from ..progress import as_progress
from .cases import BACKEND_ALIASES, DEVICES, PRECISIONS, Case, Machine, parse_list, plan_cases, skip_reason
from .stats import UNSTABLE_SPREAD, summarize

POOL_BYTES = 64 * 2**20  # the rotated input batches of one row stay under this (2 to 8 batches)
FIDELITY_IMAGES = 64  # without --images: this many crops of the sample photos (8 images made agreement noise)
DEFAULT_SECONDS = 2.0
DEFAULT_WARMUP = 5
METHOD = {
    "latency_ms": "host wall clock (perf_counter) of one call, numpy in -> numpy out: copies to and from a GPU "
                  "included; every call returns only when its output is on the host",
    "compute_ms": "GPU rows only: compute with input and output already on the GPU (CUDA events for PyTorch, "
                  "IO binding for ONNX Runtime)",
    "images_per_s": "batch / mean latency, one request at a time",
    "inputs": "timing: a pool of 2 to 8 distinct batches drawn from the fidelity images, a different one every "
              "iteration; warm-up iterations are not timed",
    "regime": "warm, one model per fresh process (one ONNX Runtime session alive at a time), library default "
              "threading unless --threads",
    "peak_rss_mib": "peak resident memory of the fresh process that ran only this row (interpreter, libraries, "
                    "model, input pool); rss_before_mib is that process before it imported any framework",
    "gpu_memory": "GPU memory held by that process at the end of the row (NVML or nvidia-smi; allocator arenas "
                  "do not shrink, so this is its peak)",
    "speedup": "p50 latency of PyTorch eager FP32 on the same device (else on the CPU), same run, / this row's p50",
    "fidelity": f"every image of the fidelity set (--images, else {FIDELITY_IMAGES} crops of scikit-image's sample "
                "photos), run by the row in batches of its size, vs PyTorch FP32 on CPU (vanexport.metrics), judged "
                "by the precision's thresholds; accuracy against the class subfolders of --images when they name "
                "classes",
    "floor": "CPU rows: compute_floor_ms = 2 x multiply-accumulates x batch / peak_gflops, the best of 10 runs of "
             "a 2048^3 MatMul through the row's own runtime in its own precision (INT8: a quantized MatMul, GOP/s), "
             "in a fresh process; share = compute_floor_ms / p50",
    "unstable": f"(p90 - p10) / p50 > {UNSTABLE_SPREAD:.0%}; a speed-up against an unstable baseline is flagged",
}


@dataclass
class BenchReport:
    settings: dict
    environment: dict
    rows: list[dict]
    warnings: list[str] = field(default_factory=list)
    method: dict = field(default_factory=lambda: dict(METHOD))

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] in ("failed", "validation failed")]


def benchmark(variants=None, weights: str | None = None, *, backends=None, precisions=None, batches=(1,),
              img_size: int = 224, warmup: int = DEFAULT_WARMUP, iters: int | None = None,
              seconds: float | None = DEFAULT_SECONDS, threads: int | None = None, device: str | None = None,
              calib=None, num_calib: int | None = None, images=None, num_classes: int | None = None, seed: int = 0,
              progress=None, on_row: Callable[[int, int, str], None] | None = None) -> BenchReport:
    """Time every requested (variant, batch, backend, device, precision) and check its logits against PyTorch.

    `backends` ("torch", "onnxruntime", "tensorrt"), `precisions` ("fp32", "fp16", "int8") and `device`
    ("cpu", "cuda") filter the rows; None means all of them. Rows this machine cannot run are kept with
    status "skipped" and the reason. `iters` times exactly that many calls per row; otherwise each row runs
    for `seconds` (at least 10 calls). `calib` (a folder of images) enables INT8 rows. Every row's fidelity is
    measured on all of `images` (a folder; class subfolders add accuracy), else on FIDELITY_IMAGES crops of the
    sample photos. `progress` (vanexport.progress) gets the preparation steps and counts the rows; `on_row(done,
    total, label)` is also called before each row.
    """
    from ..model.variants import DEFAULT_VARIANT, check_img_size, get_variant
    from ..pipeline import ModelSource
    from .artifacts import Artifacts

    p = as_progress(progress)
    step = p.step
    batches = sorted(dict.fromkeys(int(b) for b in batches))
    backends = parse_list(backends, BACKEND_ALIASES, "backend") or None
    precisions = parse_list(precisions, PRECISIONS, "precision") or None
    _check_settings(batches, img_size, warmup, iters, seconds, threads, device, calib, num_calib, images)
    check_img_size(img_size)
    variants = [get_variant(v).name for v in (variants or [])]
    from ..machine import available_memory_bytes
    from ..model.variants import check_fits_in_memory

    for v in variants or [DEFAULT_VARIANT]:
        check_fits_in_memory(get_variant(v), img_size, max(batches), available_memory_bytes(), "benchmarking")
    if weights is not None and len(variants) > 1:
        raise VanexportError("--weights belong to one variant but several --variant were given",
                             "benchmark one variant per checkpoint")
    preloaded = None
    if not variants and weights is None:
        variants = [DEFAULT_VARIANT]
    elif not variants:  # the checkpoint says which variant it is
        step("reading the checkpoint")
        preloaded = ModelSource(None, weights, num_classes, seed)
        variants = [preloaded.load()[1].name]
    cases = plan_cases(variants, batches, backends, precisions, device)
    machine = Machine.probe()
    reasons = {skip_reason(c.target, machine, calib) for c in cases}
    if None not in reasons:  # not one row can run: say why, before loading or exporting anything
        raise VanexportError("no requested benchmark can run on this machine (" + "; ".join(sorted(reasons)) + ")",
                             "ask for backends this machine has (--backends torch,ort), or install what is missing")
    settings = {"variants": variants, "weights": weights, "batches": batches, "img_size": img_size,
                "backends": backends, "precisions": precisions, "device": device, "warmup": warmup,
                "iters": iters, "seconds": None if iters else seconds, "threads": threads,
                "calib": str(calib) if calib else None, "num_calib": num_calib, "num_classes": num_classes, "seed": seed,
                "images": str(images) if images else None}
    env = bench_environment(threads)
    warnings = _machine_warnings(env)

    rows: list[dict] = []
    with work_folder() as tmp, p.task(f"benchmarking {len(cases)} rows", len(cases), "rows") as task:
        for variant in variants:
            step(f"loading VAN-{variant} (the PyTorch FP32 reference)")
            source = preloaded or ModelSource(variant, weights, num_classes, seed)
            model, v, info = source.load()
            preloaded = None
            if info.is_random:
                warnings.append(f"VAN-{v.name} has random weights (seed {seed}): speed is real, but top-1 agreement "
                                "is measured on meaningless logits; pass --weights for fidelity that means something")
            work = Path(tmp) / v.name
            work.mkdir()
            arts = Artifacts(work, source, img_size=img_size, calib=calib, num_calib=num_calib,
                             max_batch=max(batches), progress=p)
            torch_mb = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6
            fid = fidelity_set(v.preprocessing.at_size(img_size), images, info.num_classes, seed, p)
            settings["fidelity_images"] = len(fid.array)
            if images and fid.labels is None:
                warnings.append(f"the images in '{images}' have no class subfolders this model's classes can be read "
                                "from: agreement only, no accuracy")
            fid_path = work / "fidelity.npy"
            np.save(fid_path, fid.array)
            # not computed if every row is skipped
            reference = functools.cache(functools.partial(_reference_logits, model, fid.array))
            for batch in batches:
                pool_path = work / f"pool_bs{batch}.npy"
                np.save(pool_path, input_pool(fid.array, batch, seed))
                group = []
                for case in (c for c in cases if c.variant == v.name and c.batch == batch):
                    task.describe(case.label)
                    if on_row:
                        on_row(len(rows), len(cases), case.label)
                    row = _run_case(case, machine, arts, pool_path, fid_path, reference, fid.labels, torch_mb,
                                    img_size, settings, work)
                    group.append(row)
                    rows.append(row)
                    task.advance()
                _add_speedups(group)
                pool_path.unlink()
            cpu_rows = [r for r in rows if r["variant"] == v.name and floor_peak(r) and r["latency_ms"]]
            if cpu_rows:
                step(f"measuring the MatMul peaks the CPU rows of VAN-{v.name} are held to")
                _add_floors(cpu_rows, work, threads)
            del model, source, arts
        task.describe("benchmark")  # the last line counts them all
        if on_row:
            on_row(len(rows), len(cases), "done")
    warnings += _row_warnings(rows)
    env["load_average_end"] = _loadavg()
    return BenchReport(settings, env, rows, warnings)


def _check_settings(batches, img_size, warmup, iters, seconds, threads, device, calib, num_calib, images):
    if not batches or min(batches) < 1:
        raise VanexportError(f"batch sizes must be positive (got {batches})", "pass e.g. --batch 1,8")
    if warmup < 0:
        raise VanexportError(f"--warmup {warmup} is negative", "pass 0 or more warm-up iterations")
    if iters is not None and iters < 1:
        raise VanexportError(f"--iters {iters} is not positive", "pass --iters 1 or more")
    if iters is None and not (seconds and seconds > 0):
        raise VanexportError(f"--seconds {seconds} is not positive", "pass e.g. --seconds 2, or --iters N")
    if threads is not None and threads < 1:
        raise VanexportError(f"--threads {threads} is not positive", "pass --threads 1 or more, or omit it")
    if device is not None and device not in DEVICES:
        raise VanexportError(f"unknown device '{device}'", f"choose one of {', '.join(DEVICES)}")
    if calib is not None and not Path(calib).exists():
        raise VanexportError(f"calibration data '{calib}' not found", "pass a folder of images with --calib")
    if num_calib is not None and num_calib < 1:
        raise VanexportError(f"--num-calib {num_calib} is not positive", "pass e.g. --num-calib 256, or omit it")
    if images is not None and not Path(images).is_dir():
        raise VanexportError(f"image folder '{images}' not found", "pass a folder of images (class subfolders give "
                             "accuracy) with --images")


@dataclass
class FidelitySet:
    array: np.ndarray  # (N, 3, H, W) float32
    labels: np.ndarray | None  # class index per image, when the folder's subfolders name the classes
    source: str


def fidelity_set(preprocess, images=None, num_classes: int | None = None, seed: int = 0, progress=None) -> FidelitySet:
    """What every row's logits are compared on: all of `images` (a folder, ImageFolder labels when they fit the
    model), else FIDELITY_IMAGES crops of the sample photos (real image statistics, which FP16/INT8 error depends
    on, and enough images that one flipped top-1 is 1.6 points, not 12.5)."""
    from ..data.images import label_indices, load_folder, photo_crops

    if images is None:
        return FidelitySet(photo_crops(preprocess, FIDELITY_IMAGES, seed).array, None,
                           f"{FIDELITY_IMAGES} crops of the sample photos")
    data = load_folder(images, preprocess, progress=progress)
    labels = label_indices(data.labels, num_classes) if num_classes else None
    return FidelitySet(data.array, labels, str(images))


def input_pool(images: np.ndarray, batch: int, seed: int = 0) -> np.ndarray:
    """(P, batch, 3, H, W) float32: P distinct batches of `images` for the timed loop, P from 2 to 8 (the pool stays
    under POOL_BYTES). Images are dealt from shuffled copies of the set, so batches differ even when the set is
    smaller than the pool."""
    n = int(np.clip(POOL_BYTES // max(images[0].nbytes * batch, 1), 2, 8))
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(images)) for _ in range(-(-n * batch // len(images)) + 1)])
    return np.ascontiguousarray(images[order[:n * batch]].reshape(n, batch, *images.shape[1:]), np.float32)


def _reference_logits(model, images: np.ndarray) -> np.ndarray:
    from ..runtime.batching import run_batched
    from ..runtime.torch_backend import TorchBackend

    return run_batched(TorchBackend(model, "cpu"), images, 8)


def _row(case: Case, img_size: int, status: str, reason: str | None = None, **fields) -> dict:
    """One row of the table; every row has every key, so JSON and CSV have one schema."""
    row = {**case.to_dict(), "img_size": img_size, "label": case.target.label, "status": status, "reason": reason,
           "model_file": None, "size_mb": None, "latency_ms": None, "compute_ms": None, "compute_note": None,
           "images_per_s": None, "speedup": None, "speedup_baseline": None, "speedup_baseline_unstable": None,
           "fidelity": None,
           "fidelity_failures": [], "floor": None, "peak_rss_mib": None, "rss_before_mib": None, "gpu_memory": None,
           "threads": None, "load_s": None, "pool_batches": None, "warnings": []}
    row.update(fields)
    return row


def _run_case(case: Case, machine: Machine, arts, pool_path: Path, fidelity_path: Path, reference, labels,
              torch_mb: float, img_size: int, settings: dict, work: Path) -> dict:
    from .artifacts import Skipped

    t = case.target
    reason = skip_reason(t, machine, settings["calib"])
    if reason:
        return _row(case, img_size, "skipped", reason)
    model_file, size_mb = None, torch_mb
    if t.artifact:
        try:
            model_file = arts.get(t.artifact, t.file_precision)
        except Skipped as e:
            return _row(case, img_size, "skipped", str(e))
        except Exception as e:  # a conversion or build failed: this row failed, the benchmark goes on
            return _row(case, img_size, "failed", _one_line(e))
        size_mb = model_file.stat().st_size / 1e6
    result = _run_worker(case, model_file, pool_path, fidelity_path, settings, work)
    fields = {"model_file": str(model_file) if model_file else None, "size_mb": size_mb}
    if result["status"] != "ok":
        return _row(case, img_size, "failed", result["reason"], **fields)

    outputs = np.load(result.pop("outputs_path"))
    fidelity, failures = _fidelity(outputs, reference(), t.precision, t.device, labels)
    latency = summarize(result["host_ms"], case.batch)
    compute = summarize(result["compute_ms"], case.batch) if result["compute_ms"] else None
    return _row(case, img_size, "ok" if not failures else "validation failed",
                "; ".join(failures) or None, **fields, latency_ms=latency, compute_ms=compute,
                compute_note=result["compute_note"], images_per_s=latency["images_per_s"], fidelity=fidelity,
                fidelity_failures=failures, peak_rss_mib=result["peak_rss_mib"],
                rss_before_mib=result["rss_before_mib"], gpu_memory=result["gpu_memory"],
                threads=result["threads"], load_s=result["load_s"], pool_batches=result.get("pool_batches"))


def _run_worker(case: Case, model_file: Path | None, pool_path: Path, fidelity_path: Path, settings: dict,
                work: Path) -> dict:
    """Run one row in a fresh Python process (see worker.py for why)."""
    name = f"{case.variant}_bs{case.batch}_{case.target.label.replace(' ', '_')}"
    spec = {"target": asdict(case.target), "variant": case.variant, "weights": settings["weights"],
            "num_classes": settings["num_classes"], "seed": settings["seed"], "model": str(model_file) if model_file else None,
            "inputs": str(pool_path), "fidelity": str(fidelity_path), "outputs": str(work / f"{name}_out.npy"),
            "result": str(work / f"{name}.json"),
            "warmup": settings["warmup"], "iters": settings["iters"], "seconds": settings["seconds"],
            "threads": settings["threads"], "cache_dir": str(work / "trt_cache")}
    spec_path = work / f"{name}_spec.json"
    spec_path.write_text(json.dumps(spec))
    Path(spec["result"]).unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "vanexport.bench.worker", str(spec_path)], env=_child_env(),
                          capture_output=True, text=True)
    if not Path(spec["result"]).exists():  # the process died (a crash in native code, out of memory, ...)
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
        return {"status": "failed", "reason": f"the benchmark process died (exit code {proc.returncode}): {tail[0][:200]}"}
    result = json.loads(Path(spec["result"]).read_text())
    result["outputs_path"] = spec["outputs"]
    return result


def _child_env() -> dict:
    """The child imports this very vanexport (a checkout on PYTHONPATH beats an installed copy)."""
    import vanexport

    root = str(Path(vanexport.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _fidelity(outputs: np.ndarray, reference: np.ndarray, precision: str, device: str,
              labels: np.ndarray | None = None) -> tuple[dict, list[str]]:
    """The row's logits against PyTorch FP32's on the same images: metrics (with `accuracy` when there are labels)
    and the failures of its precision's verdict."""
    from ..check import metrics
    from ..check.tolerances import abs_ok, verdict_failures

    num_classes = reference.shape[-1]
    outputs, reference = outputs.reshape(-1, num_classes), reference.reshape(-1, num_classes)
    m = metrics.compare_logits(outputs, reference)
    accuracy = metrics.accuracy([(outputs, reference, labels)]) if labels is not None else None
    m["accuracy"] = accuracy
    if not np.isfinite(reference).all():
        return m, ["the PyTorch FP32 reference itself gives NaN/inf logits on these inputs (the weights overflow)"]
    if not np.isfinite(outputs).all():
        return m, ["NaN/inf logits"]
    tol = fidelity_tolerance(precision, device)
    return m, verdict_failures(m, tol, abs_ok(m, tol), accuracy)


def fidelity_tolerance(precision: str, device: str):
    """The verdict a row must pass: the check's thresholds for its precision."""
    import dataclasses

    from ..check.tolerances import TOLERANCES

    if precision == "fp32" and device == "cuda":
        # PyTorch and TensorRT run FP32 convolutions in TF32 on Ampere and newer by default: judge by cosine.
        return dataclasses.replace(TOLERANCES["fp32"], min_cosine=0.9999, check_atol=False)
    return TOLERANCES[precision]


def _add_speedups(group: list[dict]) -> None:
    timed = {(r["backend"], r["device"], r["precision"]): r for r in group if r["latency_ms"]}
    for r in group:
        base = timed.get(("torch", r["device"], "fp32")) or timed.get(("torch", "cpu", "fp32"))
        if r["latency_ms"] and base:
            r["speedup"] = base["latency_ms"]["p50"] / r["latency_ms"]["p50"]
            r["speedup_baseline"] = base["label"]
            r["speedup_baseline_unstable"] = bool(base["latency_ms"].get("unstable"))


# (runtime, precision) of the MatMul peak a CPU row is held to: its own runtime, and INT8 its INT8 peak
def floor_peak(row: dict) -> tuple[str, str] | None:
    if row["device"] != "cpu" or row["backend"] not in ("onnxruntime", "openvino") or row["precision"] == "fp16":
        return None  # FP16 on the CPU is emulated: no peak of its own
    return row["backend"], row["precision"]


def _add_floors(rows: list[dict], work: Path, threads: int | None, peak_of=None) -> None:
    """Give every timed CPU row its compute floor: 2 x MACs x batch / the MatMul peak of its runtime and precision
    (`floor_peak`; INT8 rows the INT8 peak), each peak measured once in a fresh process (`peak_of(runtime,
    precision)` -> GFLOP/s, a stand-in in tests), and the share of that floor the row reached (floor / p50)."""
    peak_of = peak_of or functools.partial(_measure_peak, work, threads)
    peaks: dict = {}
    for r in rows:
        key = floor_peak(r)
        if key is None or not r["latency_ms"] or not r["model_file"]:
            continue
        if key not in peaks:
            peaks[key] = peak_of(*key)
        gmacs = _gmacs(r["model_file"])
        if peaks[key] and gmacs:
            floor_ms = 2 * gmacs * r["batch"] / peaks[key] * 1e3
            r["floor"] = {"peak": f"{key[0]} {key[1]} MatMul 2048^3", "peak_gflops": peaks[key],
                          "compute_floor_ms": floor_ms, "share": floor_ms / r["latency_ms"]["p50"]}


@functools.lru_cache(maxsize=8)
def _gmacs(model_file: str) -> float | None:
    """Multiply-accumulates per image of the FP32 file a row's file was made from (its own, for FP32)."""
    from .floor import layer_costs

    try:
        return sum(c["macs"] for c in layer_costs(_fp32_source(model_file), batch=1)) / 1e9
    except Exception:  # a file the cost model cannot read: the row has no floor
        return None


def _fp32_source(model_file: str) -> str:
    from ..formats.onnx_metadata import read_metadata

    meta = read_metadata(model_file)
    return meta.extra.get("source", model_file) if meta.precision != "fp32" else model_file


def _measure_peak(work: Path, threads: int | None, runtime: str, precision: str) -> float | None:
    spec_path, result = work / f"peak_{runtime}_{precision}.json", work / f"peak_{runtime}_{precision}_result.json"
    spec_path.write_text(json.dumps({"peak": {"runtime": runtime, "precision": precision}, "threads": threads,
                                     "result": str(result)}))
    subprocess.run([sys.executable, "-m", "vanexport.bench.worker", str(spec_path)], env=_child_env(),
                   capture_output=True, text=True)
    try:
        data = json.loads(result.read_text())
    except (OSError, ValueError):
        return None
    return data.get("gflops") if data.get("status") == "ok" else None


def _row_warnings(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        for key in ("latency_ms", "compute_ms"):
            s = r[key]
            if s and s["unstable"]:
                msg = (f"{r['variant']} bs{r['batch']} {r['label']}: unstable {key.split('_')[0]} (p10..p90 spans "
                       f"{s['spread']:.0%} of the median); the machine may be busy: re-run, or raise --iters/--seconds")
                r["warnings"].append(msg)
                out.append(msg)
    shaky = sorted({(r["variant"], r["batch"], r["speedup_baseline"]) for r in rows
                    if r["speedup_baseline_unstable"] and r["speedup_baseline"] != r["label"]})
    for variant, batch, base in shaky:
        out.append(f"{variant} bs{batch}: the speed-ups are against {base}, whose timing was unstable: they are "
                   "uncertain (marked ? in the table)")
    if rows and not any(r["latency_ms"] for r in rows):
        out.append("no row could run on this machine: see the reasons in the table")
    return out


def _machine_warnings(env: dict) -> list[str]:
    load, cores = env["load_average_start"], env["usable_cores"]
    if load is not None and cores and load > 0.5 * cores:
        return [f"the machine was busy when the benchmark started (load average {load:.2f} on {cores} cores): "
                "timings are noisier and slower than on a quiet machine"]
    return []


def _one_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (f"{text[0]}" if isinstance(e, VanexportError) or not text else f"{type(e).__name__}: {text[0]}")[:300]


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def bench_environment(threads: int | None) -> dict:
    """Where the numbers were measured: CPU, cores, threads, GPU, memory, versions, load, date."""
    from .. import __version__
    from ..machine import gpus, ort_providers, package_versions, usable_cores

    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": _physical_cores(),
        "usable_cores": usable_cores(),
        "threads": threads if threads else "library default",
        "memory_gib": _memory_gib(),
        "gpus": gpus(),
        "onnxruntime_providers": ort_providers(),
        "packages": {k: v for k, v in package_versions().items() if v},
        "vanexport": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_start": _loadavg(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _cpuinfo() -> list[dict]:
    """/proc/cpuinfo as one dict per logical CPU (empty where there is no such file)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return [{k.strip(): v.strip() for k, v in (line.split(":", 1) for line in block.splitlines() if ":" in line)}
            for block in text.strip().split("\n\n")]


def _cpu_model() -> str:
    names = [c["model name"] for c in _cpuinfo() if "model name" in c]
    return names[0] if names else platform.processor() or platform.machine()


def _physical_cores() -> int | None:
    return len({(c.get("physical id"), c["core id"]) for c in _cpuinfo() if "core id" in c}) or None


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None
