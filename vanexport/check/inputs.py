"""What an artifact is checked on: random batches at every declared shape and real photos, or the user's images."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime.batching import chunks


@dataclass
class InputGroup:
    label: str  # e.g. "random b3 224x224" or "photos 224x224"
    batches: list[np.ndarray]
    labels: np.ndarray | None = None  # class index per image, when the folder says (ImageFolder)
    size: int | None = None  # real images; a static-batch model's padding beyond it is not counted


def default_input_groups(input_shape: list, img_size: int, preprocess, seed: int = 0,
                         random_batches: int = 2) -> list[InputGroup]:
    """Random batches at every declared batch size and resolution, and real photos at the export size."""
    from ..data.images import sample_photos

    rng = np.random.default_rng(seed)
    static_batch = input_shape[0] if isinstance(input_shape[0], int) else None
    batch_sizes = [static_batch] if static_batch else [1, 3]
    sizes = [img_size] if isinstance(input_shape[2], int) else sorted({img_size, max(32, img_size - 64), img_size + 32})
    groups = []
    for s in sizes:
        for b in batch_sizes:
            batches = [rng.uniform(-1, 1, (b, 3, s, s)).astype(np.float32) for _ in range(random_batches)]
            groups.append(InputGroup(f"random b{b} {s}x{s}", batches))
    photos = sample_photos(preprocess.at_size(img_size)).array
    groups.append(InputGroup(f"photos {img_size}x{img_size}", chunks(photos, static_batch or 4, static_batch or 1)))
    return groups


def folder_input_group(folder, preprocess, static_batch: int | None, num_classes: int | None = None,
                       progress=None) -> InputGroup:
    from ..data.images import label_indices, load_folder

    images = load_folder(folder, preprocess, progress=progress)
    labels = label_indices(images.labels, num_classes) if num_classes else None
    return InputGroup(f"{len(images.names)} images from {folder}",
                      chunks(images.array, static_batch or 8, static_batch or 1), labels, len(images.names))


def check_groups(meta, images, seed: int, static_batch: int | None = None, progress=None) -> list[InputGroup]:
    """The user's image folder, or random batches at every declared shape plus the sample photos."""
    if images:
        return [folder_input_group(images, meta.preprocess, static_batch, meta.num_classes, progress)]
    return default_input_groups(meta.input_shape, meta.img_size, meta.preprocess, seed=seed)


def groups_within_profile(groups: list[InputGroup], profile) -> list[InputGroup]:
    """The input groups an engine can take: sizes outside its H/W range dropped, batches re-cut to fit its
    batch range (the last one padded by repetition when it would be too small; padding is not counted)."""
    lo, hi = profile.min, profile.max
    out = []
    for g in groups:
        x = np.concatenate(g.batches)[:g.size]
        if not (lo[2] <= x.shape[2] <= hi[2] and lo[3] <= x.shape[3] <= hi[3]):
            continue
        n = min(max(len(g.batches[0]), lo[0]), hi[0])
        out.append(InputGroup(g.label, chunks(x, n, lo[0]), g.labels, len(x)))
    return out
