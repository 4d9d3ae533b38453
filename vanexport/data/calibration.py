"""Calibration inputs for INT8: a folder of images (read with the model's own preprocessing) or an .npz of
preprocessed batches. The set has an identity (a hash of its files) so calibration ranges can be cached.

Without an explicit count, calibration uses the images there are, at most DEFAULT_NUM_CALIB (a seeded pick), and
warns below MIN_CALIB: with fewer, the INT8 ranges of the trained digits VAN depended twice as much on which
images happened to be picked (benchmarks/calibration_count.py, docs/precision.md#how-many-calibration-images)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import VanexportError
from ..files import regular_file, sha256_file
from ..machine import available_memory_bytes
from ..model.variants import Preprocessing

DEFAULT_NUM_CALIB = 256  # without --num-calib: every readable input, at most this many
MIN_CALIB = 64  # fewer inputs than this: a warning (see the module docstring)


@dataclass
class CalibrationSet:
    source: str
    kind: str  # "folder" or "npz"
    sha256: str  # identity of the whole set: every file's relative path and bytes
    files: int  # image files (folder) or arrays (npz) found
    array: np.ndarray | None = None  # (N, 3, H, W) float32, once loaded
    skipped: list[str] = field(default_factory=list)  # unreadable files


def open_calibration(calib: str | Path) -> CalibrationSet:
    """Identify a calibration source without decoding it (cheap: hashes only)."""
    from .images import list_images

    path = Path(calib)
    if path.suffix.lower() == ".npz" and not path.is_dir():
        regular_file(path, "calibration data", "pass a folder of images or an .npz of preprocessed batches")
        return CalibrationSet(str(path), "npz", sha256_file(path), 1)
    if not path.exists():
        raise VanexportError(f"calibration data '{path}' not found",
                             "pass a folder of images (ImageFolder subfolders allowed) or an .npz of batches")
    if not path.is_dir():
        raise VanexportError(f"cannot calibrate from '{path.name}'", "pass a folder of .jpg/.png/.webp images or an .npz")
    files = list_images(path)
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(path)}\0{sha256_file(f)}\0".encode())
    return CalibrationSet(str(path), "folder", h.hexdigest(), len(files))


def load_calibration(cset: CalibrationSet, pre: Preprocessing, num: int | None = None, seed: int = 0,
                     progress=None) -> CalibrationSet:
    """Read the inputs: a seeded random pick of the folder's readable images (so every class subfolder is
    represented), or the first samples of the .npz; `num` of them, or without `num` all there are, up to
    DEFAULT_NUM_CALIB. Fewer usable inputs than an explicit `num` is an error; fewer than MIN_CALIB, a warning."""
    if num is not None and num < 1:
        raise VanexportError(f"--num-calib {num} is not positive",
                             f"pass --num-calib 1 or more, or omit it to use every image (up to {DEFAULT_NUM_CALIB})")
    if cset.kind == "npz":
        cset.array = _read_npz(Path(cset.source), pre, num)
    else:
        from .images import load_folder

        if cset.files == 0:
            raise VanexportError(f"no images in '{cset.source}'", "pass a folder with .jpg/.png/.webp images")
        images = load_folder(cset.source, pre, limit=num or DEFAULT_NUM_CALIB, shuffle_seed=seed, allow_empty=True,
                             progress=progress)
        cset.skipped = images.skipped
        found = len(images.names)
        if found == 0:
            raise VanexportError(f"none of the {cset.files} images in '{cset.source}' can be read",
                                 "pass a folder with readable .jpg/.png/.webp images")
        if num is not None and found < num:
            raise VanexportError(
                f"only {found} usable images in '{cset.source}' ({len(images.skipped)} unreadable), "
                f"fewer than --num-calib {num}", f"add images, or omit --num-calib to calibrate on all {found}")
        cset.array = images.array
    return cset


def few_inputs_warning(n: int) -> list[str]:
    """The warning calibrating on `n` inputs deserves (none from MIN_CALIB on)."""
    if n >= MIN_CALIB:
        return []
    return [f"calibrating on only {n} inputs (fewer than {MIN_CALIB}): INT8 ranges then depend on which images were "
            "picked; use a few hundred images like the ones the model will see"]


def _read_npz(path: Path, pre: Preprocessing, num: int | None) -> np.ndarray:
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            # what each array expands to, from the zip directory, before decompressing any (a zip bomb is small)
            expanded = sum(info.file_size for info in z.zip.infolist())
            budget = available_memory_bytes()
            if budget is not None and expanded > budget // 2:
                raise VanexportError(f"'{path}' expands to {expanded / 2**30:.1f} GiB, more than half the memory "
                                     f"available ({budget / 2**30:.1f} GiB)", "pass fewer or smaller batches")
            arrays = [z[k] for k in z.files]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise VanexportError(f"'{path}' is not a readable .npz ({e})", "save batches with numpy.savez") from e
    want = (3, pre.input_size, pre.input_size)
    for a in arrays:
        if a.ndim != 4 or tuple(a.shape[1:]) != want or not np.issubdtype(a.dtype, np.floating):
            raise VanexportError(f"'{path}' holds an array of shape {a.shape} ({a.dtype})",
                                 f"each array must be preprocessed float batches of shape (N, {', '.join(map(str, want))})")
    data = np.concatenate(arrays).astype(np.float32) if arrays else np.zeros((0, *want), np.float32)
    if len(data) == 0:
        raise VanexportError(f"'{path}' holds no samples", "save preprocessed batches with numpy.savez")
    if num is not None and len(data) < num:
        raise VanexportError(f"only {len(data)} samples in '{path}', fewer than --num-calib {num}",
                             f"add batches, or omit --num-calib to calibrate on all {len(data)}")
    return data[:num or DEFAULT_NUM_CALIB]
