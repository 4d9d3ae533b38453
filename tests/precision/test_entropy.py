"""Entropy calibration: the vectorised KL search gives ONNX Runtime's own thresholds, and the INT8 ranges it picks
are not the max ranges (what `quantize_static`'s 128-bin entropy gave)."""
import numpy as np
import pytest

from vanexport.precision.entropy import kl_threshold


def _reference(hist, edges, lowest, highest, num_quantized_bins=128):
    """ONNX Runtime's own (slow) search, on the same histogram."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    collector = HistogramCollector("entropy", True, hist.size, num_quantized_bins, 99.999, "same")
    lo, hi = collector.get_entropy_threshold((hist, edges, lowest, highest, edges[-1]), num_quantized_bins)
    return float(lo), float(hi)


@pytest.mark.parametrize("seed, shape, bins", [(0, "laplace", 512), (1, "normal", 512), (2, "outliers", 512),
                                               (3, "sparse", 512), (4, "outliers", 2048), (5, "laplace", 2048)])
def test_the_search_equals_onnxruntimes(seed, shape, bins):
    rng = np.random.default_rng(seed)
    values = {"laplace": rng.laplace(0, 1, 200_000), "normal": rng.normal(0, 2, 200_000),
              "outliers": np.concatenate([rng.normal(0, 1, 200_000), rng.normal(0, 40, 50)]),
              "sparse": np.repeat(rng.normal(0, 1, 300), 7)}[shape].astype(np.float32)
    t = float(np.abs(values).max())
    hist, edges = np.histogram(values, bins, range=(-t, t))
    edges = edges.astype(np.float32)
    lowest, highest = np.float32(values.min()), np.float32(values.max())
    ours = tuple(float(v) for v in kl_threshold(hist, edges, lowest, highest))
    assert ours == _reference(hist, edges, lowest, highest)  # exactly: the same candidate wins
    if shape == "outliers":  # the point of entropy calibration: a few outliers do not set the range
        assert ours[1] < 0.5 * float(highest)


@pytest.mark.slow
def test_entropy_ranges_are_not_the_max_ranges(b0_onnx_64, tmp_path):
    """On real photos, the KL search clips some activation ranges below their maxima."""
    import json

    from PIL import Image
    from skimage import data

    from vanexport.precision.int8 import quantize_int8

    calib = tmp_path / "calib"
    calib.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket", "colorwheel", "retina", "immunohistochemistry",
                 "hubble_deep_field"):
        Image.fromarray(getattr(data, name)()[..., :3]).save(calib / f"{name}.png")
    ranges = {}
    for method in ("entropy", "max"):
        r = quantize_int8(b0_onnx_64, calib, tmp_path / f"{method}.onnx", method=method, validate=False)
        cache = json.loads(open(r.calibration["cache"]).read())  # ONNX Runtime's TensorsData, as JSON
        ranges[method] = {k: _hi(v) for k, v in cache["data"].items()}
    common = sorted(set(ranges["entropy"]) & set(ranges["max"]))
    assert common
    narrower = [k for k in common if abs(ranges["entropy"][k]) < 0.999 * abs(ranges["max"][k])]
    assert len(narrower) > len(common) // 4, f"{len(narrower)} of {len(common)} ranges clipped"


def _hi(entry) -> float:
    value = entry["highest"]
    return float(value["data"][0] if isinstance(value, dict) else value)
