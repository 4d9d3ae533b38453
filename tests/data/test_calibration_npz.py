""".npz calibration input: the cap on how many samples are used, and the memory cap checked from the zip
directory before anything is decompressed."""
import numpy as np
import pytest

from vanexport.data import calibration
from vanexport.data.calibration import DEFAULT_NUM_CALIB, CalibrationSet, load_calibration
from vanexport.errors import VanexportError
from vanexport.model.variants import Preprocessing

PRE = Preprocessing(input_size=32)


def _npz(path, *sizes):
    """Batches of preprocessed samples whose values say which sample they are (sample k is all k)."""
    start, arrays = 0, {}
    for i, n in enumerate(sizes):
        ids = np.arange(start, start + n, dtype=np.float32)
        arrays[f"batch{i}"] = np.broadcast_to(ids[:, None, None, None], (n, 3, 32, 32)).copy()
        start += n
    np.savez(path, **arrays)
    return CalibrationSet(str(path), "npz", "", 1)


def test_without_num_calib_at_most_the_default_number_of_samples_in_file_order(tmp_path):
    assert DEFAULT_NUM_CALIB == 256  # the documented cap (docs/commands/quantize.md)
    got = load_calibration(_npz(tmp_path / "c.npz", 200, 100), PRE).array
    assert got.shape == (256, 3, 32, 32) and got.dtype == np.float32
    np.testing.assert_array_equal(got[:, 0, 0, 0], np.arange(256))  # the first 256, across the two batches
    fewer = load_calibration(_npz(tmp_path / "d.npz", 30), PRE).array
    np.testing.assert_array_equal(fewer[:, 0, 0, 0], np.arange(30))  # all of them when there are fewer
    more = load_calibration(_npz(tmp_path / "e.npz", 200, 100), PRE, num=270).array
    np.testing.assert_array_equal(more[:, 0, 0, 0], np.arange(270))  # --num-calib goes past the default
    with pytest.raises(VanexportError, match="only 300 samples .* fewer than --num-calib 301"):
        load_calibration(_npz(tmp_path / "f.npz", 200, 100), PRE, num=301)


def test_an_npz_that_expands_past_half_the_available_memory_is_refused_before_it_is_read(tmp_path, monkeypatch):
    cset = _npz(tmp_path / "c.npz", 8)
    import zipfile

    expanded = sum(i.file_size for i in zipfile.ZipFile(tmp_path / "c.npz").infolist())
    read = []
    real_load = np.load

    def load(*a, **k):
        z = real_load(*a, **k)
        real_getitem = type(z).__getitem__
        monkeypatch.setattr(type(z), "__getitem__", lambda self, key: read.append(key) or real_getitem(self, key))
        return z

    monkeypatch.setattr(np, "load", load)
    monkeypatch.setattr(calibration, "available_memory_bytes", lambda: 2 * expanded)  # exactly half: allowed
    assert len(load_calibration(cset, PRE).array) == 8 and read == ["batch0"]
    read.clear()
    monkeypatch.setattr(calibration, "available_memory_bytes", lambda: 2 * expanded - 2)
    with pytest.raises(VanexportError) as e:
        load_calibration(cset, PRE)
    assert e.value.problem.startswith(f"'{tmp_path / 'c.npz'}' expands to 0.0 GiB, more than half the memory available")
    assert e.value.hint == "pass fewer or smaller batches" and read == []  # no array was decompressed
    monkeypatch.setattr(calibration, "available_memory_bytes", lambda: None)  # unknown: no cap
    assert len(load_calibration(cset, PRE).array) == 8
