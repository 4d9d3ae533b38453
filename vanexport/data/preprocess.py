"""The evaluation transform in Pillow + numpy (no torch), so a device without PyTorch gets identical inputs.

Matches timm / torchvision eval: Resize(short side, bicubic) -> CenterCrop -> ToTensor -> Normalize.
Split in two so a bundle can store the exact 8-bit crops (resize_and_crop) and a device redo only `normalize`.
"""
from __future__ import annotations

import numpy as np

from ..model.variants import Preprocessing

_RESAMPLE = {"bicubic": 3, "bilinear": 2, "nearest": 0}  # PIL.Image.Resampling values


def resize_and_crop(image, pre: Preprocessing) -> np.ndarray:
    """PIL image (any mode) or HxWx3 uint8 array -> the centre crop as an HxWx3 uint8 RGB array."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image = image.convert("RGB")
    w, h = image.size
    short = pre.resize_size
    # torchvision Resize(int): the short side becomes `short`, the long side keeps the aspect ratio.
    if w <= h:
        size = (short, int(short * h / w))
    else:
        size = (int(short * w / h), short)
    image = image.resize(size, resample=_RESAMPLE[pre.interpolation])
    crop = pre.input_size
    left = int(round((size[0] - crop) / 2.0))
    top = int(round((size[1] - crop) / 2.0))
    return np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.uint8)


def normalize(pixels: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """HxWx3 (or NxHxWx3) uint8 RGB -> float32 CHW (or NCHW): scale to [0, 1], subtract mean, divide by std."""
    x = np.asarray(pixels, dtype=np.float32) / 255.0
    x = (x - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def preprocess_image(image, pre: Preprocessing) -> np.ndarray:
    """PIL image (any mode) or HxWx3 uint8 array -> float32 CHW array."""
    return normalize(resize_and_crop(image, pre), pre)


def preprocess_batch(images, pre: Preprocessing) -> np.ndarray:
    return np.stack([preprocess_image(im, pre) for im in images]).astype(np.float32)
