"""Latency samples -> the numbers a benchmark reports, and whether they can be trusted."""
from __future__ import annotations

import numpy as np

# A run is "unstable" when the middle 80 % of its samples spread wider than this fraction of the median.
# (p90 - p10) / p50 ignores a single outlier (one page fault) but catches a machine that is busy half the time.
UNSTABLE_SPREAD = 0.20


def summarize(samples_ms, batch: int) -> dict:
    """min / mean / std / p50 / p90 / p99 / max in ms, throughput in images/s, and the spread verdict.

    Percentiles are numpy's linear interpolation. Throughput is images per second of the whole timed loop
    (batch / mean latency): one request at a time, as a single client sees it.
    """
    s = np.asarray(samples_ms, dtype=np.float64)
    if s.size == 0:
        raise ValueError("no latency samples")
    if not np.all(np.isfinite(s)) or s.min() < 0:
        raise ValueError("latency samples must be finite and non-negative")
    p10, p50, p90, p99 = np.percentile(s, [10, 50, 90, 99])
    spread = float((p90 - p10) / p50) if p50 > 0 else 0.0
    mean = float(s.mean())
    return {
        "n": int(s.size),
        "min": float(s.min()),
        "mean": mean,
        "std": float(s.std(ddof=1)) if s.size > 1 else 0.0,
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(s.max()),
        "spread": spread,
        "unstable": bool(spread > UNSTABLE_SPREAD),
        "images_per_s": float(batch * 1000.0 / mean) if mean > 0 else float("inf"),
    }
