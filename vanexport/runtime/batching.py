"""One way to feed a model that takes only some batch sizes: chunk the images, pad the last chunk by repeating its
last image when the model needs more (a static batch, or a TensorRT profile's minimum), drop the padding's outputs."""
from __future__ import annotations

import numpy as np


def batch_limits(static_batch: int | None = None, profile=None, preferred: int = 8) -> tuple[int, int]:
    """(chunk size, smallest batch the model takes) for a static-batch model, a profile (min/opt/max), or neither."""
    if static_batch:
        return static_batch, static_batch
    if profile is not None:
        lo, hi = profile.min[0], profile.max[0]
        return min(max(preferred, lo), hi), lo
    return preferred, 1


def pad_batch(chunk: np.ndarray, min_size: int) -> np.ndarray:
    """`chunk` grown to `min_size` images by repeating its last one (unchanged when already big enough)."""
    if len(chunk) >= min_size:
        return chunk
    return np.concatenate([chunk, np.repeat(chunk[-1:], min_size - len(chunk), axis=0)])


def chunks(x: np.ndarray, size: int, min_size: int = 1) -> list[np.ndarray]:
    """Batches of `size` images; the last one padded to `min_size`."""
    return [pad_batch(x[i:i + size], min_size) for i in range(0, len(x), size)]


def run_batched(backend, x: np.ndarray, size: int = 8, min_size: int = 1) -> np.ndarray:
    """`backend` over all of `x`, in chunks; one float32 array of outputs for exactly the images of `x`."""
    out = [np.asarray(backend(pad_batch(x[i:i + size], min_size)))[:len(x[i:i + size])]
           for i in range(0, len(x), size)]
    return np.concatenate(out).astype(np.float32, copy=False)
