"""INT8 calibration at any count and with every method, cheaply: VAN-b0 (random weights) at 32x32, calibrated on
crops of scikit-image's sample photos. The trained-model tests (test_precision.py) check what the ranges are worth."""
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

from vanexport.data.calibration import DEFAULT_NUM_CALIB, MIN_CALIB
from vanexport.errors import VanexportError
from vanexport.precision.int8 import CALIB_ROUND_IMAGES, _BatchReader, calibration_batches, quantize_int8


# What these tests check, the counts and batches, does not depend on the entropy histogram's size.
pytestmark = pytest.mark.usefixtures("small_entropy_histograms")


def _export(folder, batch=None):
    from vanexport.export.onnx import export_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = folder / f"van_b0_32{'_bs' + str(batch) if batch else ''}.onnx"
        export_onnx("b0", None, img_size=32, batch=batch, output=out, validate=False)
    return out


@pytest.fixture(scope="module")
def b0_32(tmp_path_factory):
    return _export(tmp_path_factory.mktemp("b0_32"))


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """70 distinct 48x48 PNG crops of the sample photos (more than a collection round, a prime count apart)."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("crops")
    rng = np.random.default_rng(0)
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    for i in range(70):
        photo = photos[i % len(photos)]
        y, x = rng.integers(0, photo.shape[0] - 48), rng.integers(0, photo.shape[1] - 48)
        Image.fromarray(photo[y:y + 48, x:x + 48]).save(folder / f"{i:02d}.png")
    return folder


@pytest.mark.parametrize("static_batch", [None, 1, 4, 32])
def test_calibration_batches_are_equal_and_rounds_divide_them(static_batch):
    for n in range(1, 600):
        batch, count, stride = calibration_batches(n, static_batch)
        assert batch * count >= n and batch * (count - 1) < n, n  # every input, in as few batches as that allows
        if static_batch:
            assert batch == static_batch
        else:
            assert batch * count == n, n  # equal batches without padding
        assert count % stride == 0, n  # ONNX Runtime's CalibStridedMinMax refuses anything else
        assert stride * batch <= max(CALIB_ROUND_IMAGES, batch), n  # bounded memory
    assert calibration_batches(256) == (8, 32, 8) and calibration_batches(61) == (1, 61, 61)


def _meta(batch):
    from vanexport.formats.onnx_metadata import ModelMetadata

    return ModelMetadata("b0", 10, "input", "logits", [batch, 3, 32, 32], {}, {"input_size": 32}, "", "", "random",
                         17, "torchscript")


def test_the_reader_hands_out_every_input_once_in_batches_of_one_shape():
    meta = _meta("batch")
    x = np.arange(61 * 3 * 2 * 2, dtype=np.float32).reshape(61, 3, 2, 2)

    class Count:
        done = 0

        def advance(self, n):
            self.done += n

    task = Count()
    reader = _BatchReader(x, meta, task)
    seen = []
    for start in range(0, len(reader), reader.stride):  # what quantize_static does with CalibStridedMinMax
        reader.set_range(start, start + reader.stride)
        while (b := reader.get_next()) is not None:
            seen.append(b["input"])
    assert {b.shape for b in seen} == {(1, 3, 2, 2)} and np.array_equal(np.concatenate(seen), x)
    assert task.done == 61

    reader = _BatchReader(x[:7], _meta(4))
    shapes = [reader.get_next()["input"].shape for _ in range(len(reader))]
    assert shapes == [(4, 3, 2, 2)] * 2 and reader.get_next() is None  # 7 inputs, the last batch padded


# Entropy calibrations take seconds even so: one count of it in make test-fast, the others marked slow.
@pytest.mark.parametrize("method, n", [("entropy", 20), ("percentile", 7), ("percentile", 20), ("percentile", 61),
                                       ("max", 7), ("max", 61)]
                         + [pytest.param("entropy", n, marks=pytest.mark.slow) for n in (7, 61)])
def test_every_method_calibrates_at_any_count(b0_32, crops, tmp_path, method, n):
    r = quantize_int8(b0_32, crops, tmp_path / "m_int8.onnx", num_calib=n, method=method, validate=False)
    assert r.calibration["images"] == n and not r.calibration["cache_hit"]
    ops = {node.op_type for node in onnx.load(r.path).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(f"only {n} inputs" in w for w in r.warnings) == (n < MIN_CALIB)
    if method == "entropy":  # the ranges alone are cached: quantize_static reads nothing else (histograms were MBs)
        ranges = json.loads(Path(r.calibration["cache"]).read_text())["data"]
        assert len(ranges) > 100 and all(set(t) >= {"lowest", "highest"} and "hist" not in t for t in ranges.values())


@pytest.mark.slow
def test_static_batch_model_calibrates_on_a_count_it_does_not_divide(crops, tmp_path):
    model = _export(tmp_path, batch=4)
    r = quantize_int8(model, crops, tmp_path / "m_int8.onnx", num_calib=7, method="entropy", validate=False)
    assert r.calibration["images"] == 7


def test_without_num_calib_every_image_is_used(b0_32, crops, tmp_path):
    folder = tmp_path / "forty"
    folder.mkdir()
    for p in sorted(crops.iterdir())[:40]:
        (folder / p.name).write_bytes(p.read_bytes())
    r = quantize_int8(b0_32, folder, tmp_path / "m_int8.onnx", method="max", validate=False)
    assert r.calibration["images"] == 40 and r.calibration["num_calib"] is None
    assert any("only 40 inputs" in w for w in r.warnings)  # 40 < MIN_CALIB
    assert 40 < MIN_CALIB <= DEFAULT_NUM_CALIB
    # asking for more than there are is still an error, with the way out
    with pytest.raises(VanexportError, match="fewer than --num-calib 41.*omit --num-calib"):
        quantize_int8(b0_32, folder, tmp_path / "n_int8.onnx", num_calib=41, validate=False)
    assert not (tmp_path / "n_int8.onnx").exists()


@pytest.mark.slow
def test_calibration_progress_counts_the_inputs(b0_32, crops, tmp_path):
    import io

    from vanexport.progress import ConsoleProgress

    stream = io.StringIO()
    quantize_int8(b0_32, crops, tmp_path / "m_int8.onnx", num_calib=61, method="entropy", validate=False,
                  progress=ConsoleProgress(stream, terminal=False, interval=0))
    lines = stream.getvalue().splitlines()
    assert "• calibrating (entropy, 61 inputs, ONNX Runtime CPU)" in lines
    counted = [line for line in lines if line.startswith("  calibrating") and "/61 images" in line]
    assert counted and counted[-1].startswith("  calibrating (entropy, 61 inputs, ONNX Runtime CPU): 61/61 images")
