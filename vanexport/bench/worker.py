"""Time one benchmark row in a fresh process: `python -m vanexport.bench.worker SPEC.json`.

A fresh process per row makes three numbers honest: peak RSS is this row's alone (an ONNX Runtime row never
imports PyTorch), only one ONNX Runtime session is ever alive (idle thread pools of other sessions would steal
the cores), and no other model's weights share the caches. The parent writes the input pool and the spec;
this process writes the result JSON and the logits of every image of the fidelity set (for the fidelity check).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

import numpy as np

MIN_ITERS = 10  # with --seconds, at least this many timed iterations however slow the model
MAX_ITERS = 100_000


def timed_loop(measure_one, n_pool: int, iters: int | None, seconds: float | None) -> list[float]:
    """Call measure_one(i) (returns ms) on rotating pool indices: exactly `iters` times, or for `seconds`."""
    samples: list[float] = []
    deadline = None if iters else time.perf_counter() + float(seconds or 0)
    i = 0
    while True:
        samples.append(measure_one(i % n_pool))
        i += 1
        if iters is not None:
            if i >= iters:
                break
        elif (i >= MIN_ITERS and time.perf_counter() >= deadline) or i >= MAX_ITERS:
            break
    return samples


def host_timer(call, pool):
    """Latency as the caller sees it: numpy in, numpy out (copies to and from a GPU included; the output's
    arrival on the host is the synchronisation point)."""
    def measure(i):
        t0 = time.perf_counter()
        call(pool[i])
        return (time.perf_counter() - t0) * 1e3
    return measure


def cuda_event_timer(forward, device_pool):
    """Compute only: inputs already on the GPU, output left there, timed by CUDA events on the stream."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def measure(i):
        start.record()
        forward(device_pool[i])
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))
    return measure


def peak_rss_mib() -> float:
    """This process's peak resident set size.

    Linux: VmHWM, the high-water mark of this process's own memory. Not ru_maxrss, which Linux carries over
    from the parent through fork and exec (a child of a 600 MiB parent would report 600 MiB).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 1024)


def gpu_memory_mib(pid: int) -> float | None:
    """GPU memory this process holds, from NVML (nvidia-ml-py) or nvidia-smi; None if neither can tell."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            for d in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(d)
                for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if p.pid == pid and p.usedGpuMemory is not None:
                        return p.usedGpuMemory / 2**20
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # not installed, no driver, or another NVML failure: try nvidia-smi
        pass
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid) and parts[1].isdigit():
            return float(parts[1])
    return None


class Runner:
    """One row's model, loaded: `host(x)` is the timed call; `compute_timer` (GPU only) times compute alone."""

    compute_note: str | None = None

    def compute_timer(self, pool):
        return None

    def gpu_extra(self) -> dict:
        return {}


class TorchRunner(Runner):
    def __init__(self, spec):
        import torch

        from ..model.factory import load_model
        from ..runtime.torch_backend import TorchBackend

        if spec["threads"]:
            torch.set_num_threads(spec["threads"])
        self.threads = torch.get_num_threads()
        t = spec["target"]
        model, _, _ = load_model(spec["variant"], spec["weights"], spec["num_classes"], seed=spec["seed"], quiet=True)
        self.backend = TorchBackend(model, t["device"], autocast_fp16=t["precision"] == "fp16")
        self.host = self.backend
        if t["device"] == "cuda":
            torch.cuda.reset_peak_memory_stats()
            self.compute_note = "CUDA events around the forward pass, input already on the GPU"

    def compute_timer(self, pool):
        if self.backend.device != "cuda":
            return None
        import torch

        device_pool = [torch.from_numpy(x).to("cuda") for x in pool]
        return cuda_event_timer(self.backend.forward, device_pool)

    def gpu_extra(self) -> dict:
        import torch

        return {"torch_peak_allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
                "torch_peak_reserved_mib": torch.cuda.max_memory_reserved() / 2**20}


class OnnxRuntimeRunner(Runner):
    def __init__(self, spec):
        from ..runtime.onnxruntime_backend import OnnxRuntimeBackend

        t = spec["target"]
        provider = t["provider"]
        if provider == "TensorrtExecutionProvider":
            providers = [_trt_ep(spec["cache_dir"]), "CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            providers = {"CPUExecutionProvider": ["CPUExecutionProvider"],
                         "CUDAExecutionProvider": ["CUDAExecutionProvider", "CPUExecutionProvider"]}[provider]
        self.backend = OnnxRuntimeBackend(spec["model"], providers=providers, threads=spec["threads"])
        if self.backend.providers[0] != provider:
            raise RuntimeError(f"ONNX Runtime fell back to {self.backend.providers[0]} instead of {provider}")
        self.threads = spec["threads"]  # None: ONNX Runtime's default (one per physical core)
        self.host = self.backend
        if t["device"] == "cuda":
            self.compute_note = "session.run_with_iobinding with input and output on the GPU (no host copies)"

    def compute_timer(self, pool):
        if self.backend.device != "cuda":
            return None
        import onnxruntime as ort

        session = self.backend.session
        bindings = []
        for x in pool:  # one binding per pool batch, inputs uploaded once, outside the timing
            b = session.io_binding()
            b.bind_ortvalue_input(self.backend.input_name, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
            b.bind_output(session.get_outputs()[0].name, "cuda")
            bindings.append(b)

        def measure(i):  # the CUDA provider synchronises its stream before run_with_iobinding returns
            t0 = time.perf_counter()
            session.run_with_iobinding(bindings[i])
            return (time.perf_counter() - t0) * 1e3
        return measure


def _trt_ep(cache_dir: str):
    """ONNX Runtime's TensorRT provider with its engine cache. TensorRT is imported first: the pip wheel loads its
    libraries (libnvinfer) into the process, which the provider then finds; without them ONNX Runtime prints an
    "EP Error" and falls back to CUDA, which the caller detects (`providers[0]`) and refuses."""
    from ..machine import import_tensorrt

    import_tensorrt()
    from ..machine import gpu_stack_facts, ort_tensorrt_problem

    problem = ort_tensorrt_problem(gpu_stack_facts())  # e.g. TensorRT 11 under a provider built for 10
    if problem:
        raise RuntimeError(problem)
    # The engine is built during the warm-up; the cache keeps it for the other batch sizes of this run.
    return ("TensorrtExecutionProvider", {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache_dir,
                                          "trt_timing_cache_enable": True, "trt_timing_cache_path": cache_dir})


class OpenVinoRunner(Runner):
    """The FP32 ONNX file through OpenVINO's CPU plugin, in FP32 or BF16 (refused unless that is what compiled)."""

    def __init__(self, spec):
        from ..runtime.openvino_backend import OpenVinoBackend

        self.backend = OpenVinoBackend(spec["model"], precision=spec["target"]["precision"], threads=spec["threads"])
        self.host = self.backend
        self.threads = self.backend.threads


class TensorRTRunner(Runner):
    """A plan through vanexport's TensorRT backend (host latency: numpy in, numpy out; no PyTorch in the process).
    A batch below the profile's minimum is padded, as every caller of the backend does."""

    def __init__(self, spec):
        from ..runtime import tensorrt_backend
        from ..runtime.batching import pad_batch

        self.backend = tensorrt_backend.TensorRTBackend(spec["model"])
        low = self.backend.profile.min[0]
        self.host = self.backend if low <= 1 else (lambda x: self.backend(pad_batch(x, low))[:len(x)])
        self.threads = None
        self.compute_note = "not exposed by the TensorRT backend: host latency only"


RUNNERS = {"torch": TorchRunner, "onnxruntime": OnnxRuntimeRunner, "openvino": OpenVinoRunner,
           "tensorrt": TensorRTRunner}


def run(spec: dict) -> dict:
    pool = list(np.load(spec["inputs"]))
    rss_before = peak_rss_mib()  # interpreter + numpy + the input pool, before any framework is imported
    t0 = time.perf_counter()
    runner = RUNNERS[spec["target"]["backend"]](spec)
    # One pass over the pool touches every input before timing (and gives the logits without a fidelity set).
    outputs = np.stack([np.asarray(runner.host(x), np.float32) for x in pool])
    load_s = time.perf_counter() - t0
    for i in range(spec["warmup"]):
        runner.host(pool[i % len(pool)])
    host = timed_loop(host_timer(runner.host, pool), len(pool), spec["iters"], spec["seconds"])
    compute = None
    timer = runner.compute_timer(pool)
    if timer is not None:
        for i in range(spec["warmup"]):
            timer(i % len(pool))
        compute = timed_loop(timer, len(pool), spec["iters"], spec["seconds"])
    gpu = None
    if spec["target"]["device"] == "cuda":
        gpu = {"process_mib": gpu_memory_mib(os.getpid()), **runner.gpu_extra()}
    peak_rss = peak_rss_mib()
    if spec.get("fidelity"):  # after the memory is measured: the fidelity set is no part of the row's footprint
        outputs = fidelity_outputs(runner.host, spec["fidelity"], len(pool[0]))
    np.save(spec["outputs"], outputs)
    return {"status": "ok", "host_ms": host, "compute_ms": compute, "compute_note": runner.compute_note,
            "load_s": load_s, "threads": runner.threads, "rss_before_mib": rss_before, "peak_rss_mib": peak_rss,
            "gpu_memory": gpu, "pool_batches": len(pool)}


def fidelity_outputs(call, path: str, batch: int) -> np.ndarray:
    """Logits of every image in `path` (.npy), read a batch at a time, in batches of the row's size (the last one
    padded by repeating its last image, whose outputs are dropped)."""
    from ..runtime.batching import pad_batch

    images = np.load(path, mmap_mode="r")
    out = []
    for i in range(0, len(images), batch):
        chunk = np.array(images[i:i + batch])
        out.append(np.asarray(call(pad_batch(chunk, batch)), np.float32)[:len(chunk)])
    return np.concatenate(out)


def measure_peak(spec: dict) -> dict:
    """The MatMul peak a row's floor is made of (bench.floor.matmul_peak), alone in this process."""
    from .floor import matmul_peak

    peak = spec["peak"]
    return {"status": "ok", "gflops": matmul_peak(peak["runtime"], peak["precision"], threads=spec.get("threads"))}


def main(argv=None) -> int:
    spec_path = Path((argv or sys.argv[1:])[0])
    spec = json.loads(spec_path.read_text())
    try:
        result = measure_peak(spec) if "peak" in spec else run(spec)
    except Exception as e:  # any failure of this row is reported in its row, never a crash of the benchmark
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        result = {"status": "failed", "reason": f"{type(e).__name__}: {first}"[:300],
                  "traceback": traceback.format_exc()[-4000:]}
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
