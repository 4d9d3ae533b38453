"""Entropy (KL-divergence) calibration as TensorRT describes it: 2048-bin histograms of each activation, and for
every candidate range the KL divergence between the clipped distribution and its 128-level quantization; the range
with the least divergence wins.

ONNX Runtime's `quantize_static` builds its entropy histograms with 128 bins and no way to ask for more, so its KL
search has a single candidate (the whole range) and "entropy" gives exactly the ranges of "max". Its calibrator
takes more bins, but its search is a Python loop per bin: minutes for one VAN-b0. So vanexport collects the
histograms with ONNX Runtime's own calibrator at 2048 bins, searches them here (the same algorithm, one numpy step
per candidate), and hands the ranges to `quantize_static` through its calibration cache.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

NUM_BINS = 2048  # TensorRT's histogram calibrator
NUM_QUANTIZED_BINS = 128  # the positive half of INT8


def _smooth(p: np.ndarray, eps: float = 1e-4) -> np.ndarray | None:
    """ONNX Runtime's smooth_distribution: zeros become eps, taken off the non-zero entries (float32)."""
    zeros = p == 0
    n_nonzeros = p.size - int(zeros.sum())
    if not n_nonzeros:
        return None
    out = p.astype(np.float32)
    out += np.where(zeros, np.float32(eps), np.float32(-eps * float(zeros.sum()) / n_nonzeros))
    return out


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """scipy.stats.entropy(p, q): KL divergence of the normalised distributions."""
    p = p.astype(np.float64) / p.sum()
    q = q.astype(np.float64) / q.sum()
    return float(np.sum(p * np.log(p / q)))


def kl_threshold(hist: np.ndarray, edges: np.ndarray, lowest, highest,
                 num_quantized_bins: int = NUM_QUANTIZED_BINS) -> tuple:
    """(low, high) of the range with the least KL divergence, for a histogram symmetric around zero: the result of
    ONNX Runtime's HistogramCollector.get_entropy_threshold, with its per-bin Python loops done by numpy."""
    hist = np.asarray(hist, dtype=np.int64)
    num_bins = hist.size
    zero = num_bins // 2
    half = num_quantized_bins // 2
    below = np.concatenate([[0], np.cumsum(hist)])  # below[k] = sum(hist[:k])
    best, best_div = None, np.inf
    for i in range(half, zero + 1):
        start, end = zero - i, min(zero + i + 1, num_bins)
        sliced = hist[start:end]
        p = sliced.copy()
        p[0] += below[start]
        p[-1] += below[-1] - below[end]
        nonzero = p != 0
        merged = sliced.size // num_quantized_bins
        head = num_quantized_bins * merged
        quantized = sliced[:head].reshape(num_quantized_bins, merged).sum(1)
        quantized[-1] += sliced[head:].sum()
        norm = nonzero[:head].reshape(num_quantized_bins, merged).sum(1)
        q = np.zeros(sliced.size, dtype=np.int64)
        q[:head] = np.repeat(np.where(norm > 0, quantized // np.maximum(norm, 1), 0), merged)
        ps, qs = _smooth(p), _smooth(q)
        div = np.inf if ps is None or qs is None else _kl(ps, qs)
        if div < best_div:  # the first minimum, as np.argmin picks it
            best, best_div = (edges[start], edges[end]), div
    if best is None:
        best = (edges[zero - half], edges[min(zero + half + 1, num_bins)])
    low, high = best
    return (lowest if low < lowest else low), (highest if high > highest else high)


def entropy_ranges(model_path: Path, reader, op_types, work: Path):
    """Calibrate `model_path` on `reader` (vanexport's batch reader: collected in its rounds) with 2048-bin
    histograms, and return ONNX Runtime's TensorsData of the KL-optimal ranges."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import TensorsData, create_calibrator

    calibrator = create_calibrator(Path(model_path), list(op_types), augmented_model_path=str(work / "augmented.onnx"),
                                   calibrate_method=CalibrationMethod.Entropy,
                                   extra_options={"symmetric": True, "num_bins": NUM_BINS,
                                                  "num_quantized_bins": NUM_QUANTIZED_BINS})
    for start in range(0, len(reader), reader.stride):
        reader.set_range(start, start + reader.stride)
        calibrator.collect_data(reader)
    ranges = {}
    for name, (hist, edges, lowest, highest, *_) in calibrator.collector.histogram_dict.items():
        ranges[name] = (*kl_threshold(hist, edges, lowest, highest), hist, edges)
    del calibrator
    return TensorsData(CalibrationMethod.Entropy, ranges)
