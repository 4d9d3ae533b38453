"""Entropy (KL-divergence) calibration as TensorRT describes it: 2048-bin histograms of each activation, and for
every candidate range the KL divergence between the clipped distribution and its 128-level quantization; the range
with the least divergence wins.

ONNX Runtime's `quantize_static` builds its entropy histograms with 128 bins and no way to ask for more, so its KL
search has a single candidate (the whole range) and "entropy" gives exactly the ranges of "max". Its calibrator
takes more bins, but its search is a Python loop per bin: minutes for one VAN-b0. So vanexport collects the
histograms with ONNX Runtime's own calibrator at 2048 bins, searches them here (the same algorithm and the same
thresholds, all candidates of a tensor as a few numpy arrays), and hands the ranges to `quantize_static` through its
calibration cache.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..machine import usable_cores

NUM_BINS = 2048  # TensorRT's histogram calibrator
NUM_QUANTIZED_BINS = 128  # the positive half of INT8


def kl_threshold(hist: np.ndarray, edges: np.ndarray, lowest, highest,
                 num_quantized_bins: int = NUM_QUANTIZED_BINS) -> tuple:
    """(low, high) of the range with the least KL divergence, for a histogram symmetric around zero: the result of
    ONNX Runtime's HistogramCollector.get_entropy_threshold, its per-candidate Python loop done as numpy arrays.

    Candidates are grouped by how many histogram bins merge into one quantized bin, so each group is one 2-D array
    (a row per candidate, padded to the longest); the sums that decide between near-equal divergences are taken
    row by row over each row's own length, so they round exactly as ONNX Runtime's 1-D sums do."""
    hist = np.asarray(hist, dtype=np.int64)
    num_bins = hist.size
    zero = num_bins // 2
    half = num_quantized_bins // 2
    below = np.concatenate([[0], np.cumsum(hist)])  # below[k] = sum(hist[:k])
    i = np.arange(half, zero + 1)
    starts, ends = zero - i, np.minimum(zero + i + 1, num_bins)
    lengths = ends - starts
    merged_per_candidate = lengths // num_quantized_bins
    divergences = np.empty(i.size)
    for merged in np.unique(merged_per_candidate):
        rows = np.flatnonzero(merged_per_candidate == merged)
        divergences[rows] = _divergences(hist, below, starts[rows], ends[rows], int(merged), num_quantized_bins)
    divergences[np.isnan(divergences)] = np.inf
    if np.isinf(divergences).all():
        low, high = edges[zero - half], edges[min(zero + half + 1, num_bins)]
    else:
        best = int(np.argmin(divergences))  # the first minimum, as ONNX Runtime's np.argmin picks it
        low, high = edges[starts[best]], edges[ends[best]]
    return (lowest if low < lowest else low), (highest if high > highest else high)


def _divergences(hist, below, start, end, merged, num_quantized_bins):
    """KL divergence of each candidate [start, end) whose length holds `merged` bins per quantized bin."""
    length = end - start
    n, num_bins = length.size, hist.size
    cols = np.arange(int(length.max()))
    valid = cols < length[:, None]
    sliced = np.where(valid, hist[np.minimum(start[:, None] + cols, num_bins - 1)], 0)
    rows = np.arange(n)
    p = sliced.copy()  # the clipped distribution: outliers added to the edge bins
    p[:, 0] += below[start]
    p[rows, length - 1] += below[-1] - below[end]
    head = num_quantized_bins * merged
    quantized = sliced[:, :head].reshape(n, num_quantized_bins, merged).sum(2)
    quantized[:, -1] += sliced[:, head:].sum(1)
    norm = (p[:, :head] != 0).reshape(n, num_quantized_bins, merged).sum(2)
    q = np.zeros_like(p)  # each quantized bin spread over its non-empty source bins (integer division, as ORT)
    q[:, :head] = np.repeat(np.where(norm > 0, quantized // np.maximum(norm, 1), 0), merged, axis=1)
    ps, p_ok = _smooth(p, valid, length)
    qs, q_ok = _smooth(q, valid, length)
    p64 = ps.astype(np.float64) / _row_sums(ps, length)[:, None]  # scipy.stats.entropy normalises both
    q64 = qs.astype(np.float64) / _row_sums(qs, length)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(valid, p64 * np.log(np.where(valid, p64 / q64, 1.0)), 0.0)
    divergence = _row_sums(terms, length)
    divergence[~(p_ok & q_ok)] = np.inf  # ONNX Runtime skips a candidate whose distribution is all zeros
    return divergence


def _smooth(x, valid, length, eps: float = 1e-4):
    """ONNX Runtime's smooth_distribution per row: zeros become eps, taken off the non-zero entries (float32)."""
    zeros = (x == 0) & valid
    n_zeros = zeros.sum(1)
    n_nonzeros = length - n_zeros
    shift = (-eps * n_zeros.astype(np.float64) / np.maximum(n_nonzeros, 1)).astype(np.float32)
    out = x.astype(np.float32)
    out += np.where(zeros, np.float32(eps), shift[:, None])
    out[~valid] = 0
    return out, n_nonzeros > 0


def _row_sums(x, length):
    # numpy's pairwise rounding depends on the length summed: each row over its own length, as a 1-D sum
    return np.array([x[k, :n].sum() for k, n in enumerate(length)], dtype=x.dtype)


def entropy_ranges(model_path: Path, reader, op_types, work: Path):
    """Calibrate `model_path` on `reader` (vanexport's batch reader: collected in its rounds) with 2048-bin
    histograms, and return ONNX Runtime's TensorsData of the KL-optimal ranges."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, create_calibrator

    calibrator = create_calibrator(Path(model_path), list(op_types), augmented_model_path=str(work / "augmented.onnx"),
                                   calibrate_method=CalibrationMethod.Entropy,
                                   extra_options={"symmetric": True, "num_bins": NUM_BINS,
                                                  "num_quantized_bins": NUM_QUANTIZED_BINS})
    for start in range(0, len(reader), reader.stride):
        reader.set_range(start, start + reader.stride)
        calibrator.collect_data(reader)
    histograms = calibrator.collector.histogram_dict
    del calibrator

    def search(item):  # the range alone: quantize_static reads no more, and 2048-bin histograms made a 9 MB cache
        name, (hist, edges, lowest, highest, *_) = item
        low, high = kl_threshold(hist, edges, lowest, highest)
        return name, TensorData(lowest=low, highest=high)

    # numpy releases the GIL in the large array operations: the searches share the cores (2.1x on two)
    with ThreadPoolExecutor(max_workers=min(4, usable_cores())) as pool:
        ranges = dict(pool.map(search, histograms.items()))
    return TensorsData(CalibrationMethod.Entropy, ranges)
