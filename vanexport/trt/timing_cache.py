"""The timing cache file and what it was made for.

A timing cache holds kernel timings measured on one GPU by one TensorRT version. Handed to another, TensorRT
refuses it (`set_timing_cache` returns False) or, through Polygraphy's loader, merges it regardless; and a build
that started from a refused cache used to write its empty result over the old file. So: the TensorRT version and
compute capability are recorded beside the cache (`timing.cache.json`), a cache made for anything else is not
loaded, and an empty cache is never written. A cache without that record (from trtexec, or a bundle) is handed to
TensorRT, whose own header check decides.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..files import atomic_output


@dataclass(frozen=True)
class CacheKey:
    tensorrt: str
    compute_capability: str
    gpu: str = ""  # informative: TensorRT's own header check covers the device properties

    def describe(self) -> str:
        return f"TensorRT {self.tensorrt} on compute capability {self.compute_capability}"

    def to_dict(self) -> dict:
        return asdict(self)


def key_path(cache) -> Path:
    """engines/timing.cache -> engines/timing.cache.json"""
    cache = Path(cache)
    return cache.with_name(cache.name + ".json")


def read_key(cache) -> CacheKey | None:
    try:
        d = json.loads(key_path(cache).read_text())
        return CacheKey(str(d["tensorrt"]), str(d["compute_capability"]), str(d.get("gpu", "")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def read_cache(cache, key: CacheKey) -> tuple[bytes, str | None]:
    """(bytes to hand to TensorRT, b"" for none; a note when a cache was there but is not used)."""
    cache = Path(cache)
    if not cache.is_file():
        return b"", None
    data = cache.read_bytes()
    if not data:
        return b"", f"{cache} is empty: building without it"
    made_for = read_key(cache)
    if made_for is not None and (made_for.tensorrt, made_for.compute_capability) != (key.tensorrt,
                                                                                       key.compute_capability):
        return b"", (f"{cache} was made by {made_for.describe()}, this build is {key.describe()}: "
                     "not used (kernel timings do not carry over)")
    return data, None


def write_cache(cache, data: bytes, key: CacheKey, empty: bool) -> bool:
    """Write the cache and its key (atomically, both); never an empty cache (the old file is kept). True when
    written."""
    if empty or not data:
        return False
    cache = Path(cache)
    with atomic_output(cache) as tmp:
        tmp.write_bytes(data)
    with atomic_output(key_path(cache)) as tmp:
        tmp.write_text(json.dumps(key.to_dict(), indent=2, sort_keys=True) + "\n")
    return True
