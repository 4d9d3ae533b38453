"""Where images come from: a folder (recursive, ImageFolder-style), or the photos scikit-image ships.

Images come from users and devices, so opening one is defensive (`open_image`): regular files only; the size the
file declares checked before a pixel is decoded (a PNG of a few hundred bytes can declare 30000 x 30000 or
400000 x 1 pixels); the EXIF orientation applied (phone photos are stored sideways); the first frame of an animated
GIF, PNG or WebP; every mode converted to 8-bit RGB by the rules of `preprocess.to_rgb`. A file that fails is
skipped with its reason and counted, never a crash, and the other images of the call go on."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import VanexportError
from ..files import regular_file
from ..model.variants import Preprocessing
from .preprocess import MAX_PIXELS, preprocess_image, resize_and_crop, to_rgb

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
# The longest side an image may have: JPEG's own limit. Past it, a file is refused before it is decoded.
MAX_SIDE = 65_500
# Colour photos that scikit-image ships: real image statistics without any download.
SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "colorwheel", "immunohistochemistry", "retina",
                 "hubble_deep_field")


@dataclass
class ImageSet:
    """Preprocessed images (N, 3, H, W) with the names they came from and what could not be read."""

    array: np.ndarray
    names: list[str]
    labels: list[str | None] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def open_image(path: str | Path):
    """The image at `path` as an RGB PIL image, upright, its first frame; raises one of `unreadable_errors()` when
    it is not a usable image (a VanexportError, with the reason, when it is too large)."""
    import warnings

    from PIL import Image, ImageOps

    path = regular_file(path, "image", "pass image files or folders")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # past MAX_PIXELS: check_size refuses it
        try:
            im = Image.open(path)  # reads the header only
        except Image.DecompressionBombError:  # Pillow's own check, past twice MAX_PIXELS: the same line as ours
            raise too_large(path, None) from None
    with im:
        check_size(path, im.size)
        im.seek(0)  # an animated GIF, PNG or WebP: its first frame
        return to_rgb(ImageOps.exif_transpose(im))


def check_size(path, size: tuple[int, int]) -> None:
    """Refuse, before decoding, an image with more than MAX_PIXELS pixels or a side longer than MAX_SIDE."""
    w, h = size
    if w * h > MAX_PIXELS or max(w, h) > MAX_SIDE:
        raise too_large(path, size)


def too_large(path, size: tuple[int, int] | None) -> VanexportError:
    dims = f"{size[0]} x {size[1]} pixels; " if size else ""  # Pillow's own error does not say the size
    return VanexportError(f"image '{path}' is too large ({dims}at most {MAX_PIXELS} pixels, {MAX_SIDE} a side)",
                          "resize or crop it")


def unreadable_reason(path, e: BaseException) -> str:
    """One line saying why the image at `path` was not used (`e`: one of `unreadable_errors()`)."""
    if isinstance(e, VanexportError):  # says what is wrong; name the image where it does not
        return str(e) if f"'{path}'" in str(e) else f"image '{path}': {e}"
    first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    return f"cannot read '{path}' ({first})"


def unreadable_errors() -> tuple[type[BaseException], ...]:
    """What `open_image` raises for a file that is not a usable image (Pillow imported lazily)."""
    from PIL import Image, UnidentifiedImageError

    return (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, VanexportError,
            Image.DecompressionBombError, Image.DecompressionBombWarning)


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise VanexportError(f"image folder '{folder}' not found", "pass a folder of .jpg/.png/.webp images")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_folder(folder: str | Path, pre: Preprocessing, limit: int | None = None, shuffle_seed: int | None = None,
                allow_empty: bool = False, progress=None) -> ImageSet:
    """Read a folder recursively; a subfolder name is the label (ImageFolder style). Bad files are skipped.

    With `limit`, reading stops after that many readable images; `shuffle_seed` then picks them in a seeded
    random order instead of sorted order, so every class subfolder is represented. `progress`: see
    vanexport.progress (a count of the images read)."""
    from ..progress import as_progress

    folder = Path(folder)
    unreadable = unreadable_errors()
    arrays, names, labels, skipped = [], [], [], []
    paths = list_images(folder)
    if shuffle_seed is not None:
        paths = [paths[i] for i in np.random.default_rng(shuffle_seed).permutation(len(paths))]
    wanted = len(paths) if limit is None else min(limit, len(paths))
    with as_progress(progress).task(f"reading {wanted} images from '{folder}'", wanted, "images") as task:
        for path in paths:
            if limit is not None and len(arrays) >= limit:
                break
            try:
                arrays.append(preprocess_image(open_image(path), pre))
            except unreadable:
                skipped.append(str(path))
                continue
            rel = path.relative_to(folder)
            names.append(str(rel))
            labels.append(rel.parts[0] if len(rel.parts) > 1 else None)
            task.advance()
    if not arrays and not allow_empty:
        raise VanexportError(f"no readable images in '{folder}'" + (f" ({len(skipped)} unreadable)" if skipped else ""),
                             "pass a folder with .jpg/.png/.webp images")
    shape = (0, 3, pre.input_size, pre.input_size)
    return ImageSet(np.stack(arrays) if arrays else np.zeros(shape, np.float32), names, labels, skipped)


def sample_photos(pre: Preprocessing, names=SAMPLE_PHOTOS) -> ImageSet:
    """scikit-image's sample colour photos, preprocessed (no network needed)."""
    photos = _sample_rgb(names)
    arrays = [preprocess_image(a, pre) for a in photos.values()]
    return ImageSet(np.stack(arrays), list(photos), [None] * len(names))


def photo_crops(pre: Preprocessing, n: int, seed: int = 0) -> ImageSet:
    """`n` distinct views of the sample photos, preprocessed: random crops (40-100 % of the short side, anywhere in
    the photo), every other one mirrored. More real images than the eight photos, without a download."""
    photos = _sample_rgb(SAMPLE_PHOTOS)
    rng = np.random.default_rng(seed)
    arrays, names = [], []
    for i in range(n):
        name, a = list(photos.items())[i % len(photos)]
        h, w = a.shape[:2]
        side = int(min(h, w) * rng.uniform(0.4, 1.0))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = a[y:y + side, x:x + side]
        arrays.append(preprocess_image(np.ascontiguousarray(crop[:, ::-1] if i % 2 else crop), pre))
        names.append(f"{name} crop {i}")
    return ImageSet(np.stack(arrays), names, [None] * n)


def check_crops(pre: Preprocessing, folder: str | Path | None = None, limit: int = 16) -> tuple[np.ndarray, list[str]]:
    """Resized, centre-cropped 8-bit RGB images (N, H, W, 3) to ship as check inputs: the sample photos, or up to
    `limit` images of `folder`. Storing the crops (not floats) keeps them small and exact."""
    if folder is None:
        photos = _sample_rgb(SAMPLE_PHOTOS)
        return np.stack([resize_and_crop(a, pre) for a in photos.values()]), list(photos)
    crops, names = [], []
    unreadable = unreadable_errors()
    for path in list_images(folder):
        if len(crops) >= limit:
            break
        try:
            crops.append(resize_and_crop(open_image(path), pre))
        except unreadable:
            continue
        names.append(str(path.relative_to(folder)))
    if not crops:
        raise VanexportError(f"no readable images in '{folder}'", "pass a folder with .jpg/.png/.webp images")
    return np.stack(crops), names


def _sample_rgb(names) -> dict[str, np.ndarray]:
    from skimage import data as skdata

    return {f"skimage:{n}": _rgb(getattr(skdata, n)()) for n in names}


def _rgb(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.dtype != np.uint8:
        a = (255 * (a - a.min()) / max(float(a.max() - a.min()), 1e-12)).astype(np.uint8)
    return a[..., :3]


def label_indices(labels: list[str | None], num_classes: int) -> np.ndarray | None:
    """Class indices for ImageFolder labels, or None when they cannot be known.

    Subfolders named by integers (`0/`, `7/`, `281/`) are those class indices; otherwise, when there is one
    subfolder per class, they follow torchvision's ImageFolder rule (sorted names -> 0..K-1)."""
    if not labels or any(lb is None for lb in labels):
        return None
    names = sorted(set(labels))
    if all(n.isdigit() for n in names):
        idx = np.array([int(lb) for lb in labels])
        return idx if idx.max() < num_classes else None
    if len(names) != num_classes:
        return None
    order = {n: i for i, n in enumerate(names)}
    return np.array([order[lb] for lb in labels])
