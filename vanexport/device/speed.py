"""How fast each CPU way to run a model is on this very machine: a short timing on first use, cached per machine
(CPU model, its instruction-set flags, the runtimes' versions) and file (sha256), so later starts only read it.

Which CPU backend and precision is fastest depends on the CPU: on an AMD EPYC with AVX-512 ONNX Runtime FP32 beat
OpenVINO FP32, on a Xeon with AMX OpenVINO won, and an INT8 file ONNX Runtime runs 3x slower than FP32 there is
2x faster in OpenVINO (docs/benchmarks.md#int8-for-the-cpu). An order fixed on one machine is wrong on another, so
the order `select.by_measured_speed` applies comes from here. The clock and the way a backend is started are
parameters: the tests give times instead of measuring them.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import select

WARMUP_CALLS = 3
TIMED_CALLS = 10  # batch 1: about 0.1 s for VAN-b0 at 224; the median of these is the way's time
SCHEMA = "vanexport.cpu-speed/1"


def machine_key() -> str:
    """16 hex digits naming this CPU and runtimes: CPU model, sorted instruction-set flags, and the versions of
    ONNX Runtime and OpenVINO (a new release may change which is faster)."""
    import importlib.metadata

    cpu = _cpuinfo_fields()
    versions = {}
    for name in ("onnxruntime", "onnxruntime-gpu", "openvino"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    text = json.dumps({"cpu": cpu, "versions": versions}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cpuinfo_fields() -> dict:
    """The CPU model name and its flags (x86 `flags`, ARM `Features`), from the first processor of /proc/cpuinfo."""
    import platform

    try:
        block = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return {"model": platform.processor() or platform.machine(), "flags": []}
    info = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in block.splitlines() if ":" in line)}
    flags = sorted(set((info.get("flags") or info.get("Features") or "").split()))
    return {"model": info.get("model name") or info.get("CPU part") or platform.machine(), "flags": flags}


class SpeedCache:
    """Measured milliseconds per call, by (file sha256, backend, precision, batch), in one JSON file per machine
    under vanexport's cache folder. An unreadable or foreign file counts as empty: it is a cache."""

    def __init__(self, folder: Path | None = None, key: str | None = None):
        if folder is None:
            from ..files import cache_dir

            folder = cache_dir() / "cpu-speed"
        self.path = Path(folder) / f"{key or machine_key()}.json"
        self.times = self._read()

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("ms"), dict):
            return {}
        return {k: float(v) for k, v in data["ms"].items() if isinstance(v, (int, float)) and v > 0}

    @staticmethod
    def entry(sha256: str, backend: str, precision: str, batch: int) -> str:
        return f"{sha256}:{backend}:{precision}:bs{batch}"

    def get(self, sha256: str, backend: str, precision: str, batch: int) -> float | None:
        return self.times.get(self.entry(sha256, backend, precision, batch))

    def put(self, sha256: str, backend: str, precision: str, batch: int, ms: float) -> None:
        from ..files import atomic_output

        self.times[self.entry(sha256, backend, precision, batch)] = float(ms)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(self.path) as tmp:
            tmp.write_text(json.dumps({"schema": SCHEMA, "ms": self.times}, sort_keys=True))


def time_call(call: Callable, x: np.ndarray, clock: Callable[[], float] = time.perf_counter,
              warmup: int = WARMUP_CALLS, calls: int = TIMED_CALLS) -> float:
    """Median milliseconds of `calls` calls of `call(x)`, after `warmup` untimed ones."""
    for _ in range(warmup):
        call(x)
    samples = []
    for _ in range(calls):
        t0 = clock()
        call(x)
        samples.append((clock() - t0) * 1e3)
    return float(np.median(samples))


def measure(choices: list[select.Choice], start: Callable, sample: Callable, *, cache: SpeedCache | None = None,
            sha256_of: Callable[[str], str] | None = None, clock: Callable[[], float] = time.perf_counter,
            progress: Callable[[str], None] | None = None) -> tuple[dict, list[str]]:
    """({select.speed_key: ms per call at batch 1}, notes) for the CPU ways among `choices`: read from `cache`, or
    timed now (`start(choice)` builds the backend, `sample(backend)` gives a batch-1 input for it) and cached. A
    way that fails to start is left out (its failure shows when it is started for real)."""
    from ..errors import VanexportError

    if sha256_of is None:
        from ..files import sha256_file as sha256_of
    step = progress or (lambda msg: None)
    cache = cache if cache is not None else SpeedCache()
    ms, notes = {}, []
    for choice in (c for c in choices if c.backend in select.CPU_CHOICE_BACKENDS):
        sha = sha256_of(choice.candidate.path)
        known = cache.get(sha, choice.backend, choice.precision, 1)
        if known is not None:
            ms[select.speed_key(choice)] = known
            continue
        step(f"timing {select.way(choice)} on {Path(choice.candidate.path).name} "
             "(first use on this machine)")
        try:
            backend = start(choice)
            t = time_call(backend, sample(backend), clock)
        except VanexportError as e:
            notes.append(f"{choice.backend} on {Path(choice.candidate.path).name}: not timed ({e.problem})")
            continue
        finally:
            backend = None  # one runtime's thread pool alive at a time
        cache.put(sha, choice.backend, choice.precision, 1, t)
        ms[select.speed_key(choice)] = t
    return ms, notes


def sample_input(backend) -> np.ndarray:
    """A batch-1 input (its static batch, if it has one) of the shape the model's own metadata declares."""
    from ..formats.onnx_metadata import ModelMetadata

    meta = ModelMetadata.from_props(backend.metadata)
    size = meta.img_size
    return np.random.default_rng(0).standard_normal((meta.static_batch or 1, 3, size, size), dtype=np.float32)
