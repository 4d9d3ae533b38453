"""Calibration inputs for INT8: a folder of images (read with the model's own preprocessing) or an .npz of
preprocessed batches. The set has an identity (a hash of its files) so calibration ranges can be cached."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import VanexportError
from ..files import regular_file, sha256_file
from ..machine import available_memory_bytes
from ..model.variants import Preprocessing


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


def load_calibration(cset: CalibrationSet, pre: Preprocessing, num: int, seed: int = 0) -> CalibrationSet:
    """Read `num` inputs: a seeded random pick of the folder's readable images (so every class subfolder is
    represented), or the first `num` samples of the .npz. Fewer usable inputs than `num` is an error."""
    if num < 1:
        raise VanexportError(f"--num-calib {num} is not positive", "pass --num-calib 1 or more (256 is typical)")
    if cset.kind == "npz":
        cset.array = _read_npz(Path(cset.source), pre, num)
        return cset
    from .images import load_folder

    if cset.files == 0:
        raise VanexportError(f"no images in '{cset.source}'", "pass a folder with .jpg/.png/.webp images")
    images = load_folder(cset.source, pre, limit=num, shuffle_seed=seed, allow_empty=True)
    cset.skipped = images.skipped
    if len(images.names) < num:
        raise VanexportError(
            f"only {len(images.names)} usable images in '{cset.source}' ({len(images.skipped)} unreadable), "
            f"fewer than --num-calib {num}",
            f"add images, or pass --num-calib {len(images.names)} or less" if images.names else "add readable images")
    cset.array = images.array
    return cset


def _read_npz(path: Path, pre: Preprocessing, num: int) -> np.ndarray:
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
    if len(data) < num:
        raise VanexportError(f"only {len(data)} samples in '{path}', fewer than --num-calib {num}",
                             f"pass --num-calib {len(data)} or less, or add batches")
    return data[:num]
