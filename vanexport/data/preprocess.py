"""The evaluation transform in Pillow + numpy (no torch), so a device without PyTorch gets identical inputs.

Matches timm / torchvision eval: Resize(short side, bicubic) -> CenterCrop -> ToTensor -> Normalize.
Split in two so a bundle can store the exact 8-bit crops (resize_and_crop) and a device redo only `normalize`.

Every image becomes 8-bit RGB first (`to_rgb`), by one rule per kind of image Pillow opens:
- 16-bit and 32-bit integer grey (modes I;16, I;16B, I;16L, I): the 16-bit range scaled to 8 bits, v * 255 / 65535
  rounded (values outside 0..65535, possible only in a 32-bit file, are clipped first). Pillow's own conversion
  clips at 255 instead, which turns almost every pixel of a 16-bit photo white;
- 32-bit float grey (F): values within [0, 1] (the float convention of scikit-image and torchvision) scaled by 255,
  otherwise read as 0..255 and clipped (NaN is 0);
- transparency (RGBA, LA, PA, a palette or a single colour marked transparent): composited onto white, what a
  viewer or a browser shows. Pillow's convert("RGB") (which torchvision's loader uses) drops the alpha and keeps
  whatever colour the encoder left under transparent pixels, often black, sometimes leftovers: not part of the
  picture, and different from one encoder to the next;
- everything else (1-bit, grey, palette, CMYK, YCbCr, RGB): Pillow's own convert("RGB").
"""
from __future__ import annotations

import numpy as np

from ..errors import VanexportError
from ..model.variants import Preprocessing

_RESAMPLE = {"bicubic": 3, "bilinear": 2, "nearest": 0}  # PIL.Image.Resampling values
# The most pixels an image may have, and its resized copy: Pillow's own decompression-bomb limit (a quarter GiB as
# 8-bit RGB). A 400000 x 1 image is within it, but resized to a 256-pixel short side it would be 102 400 000 x 256.
MAX_PIXELS = 89_478_485
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
BACKGROUND = (255, 255, 255)  # what transparent pixels become


def to_rgb(image):
    """A PIL image of any mode -> 8-bit RGB, by the rules in this module's docstring."""
    from PIL import Image

    if image.mode in _SIXTEEN_BIT:
        grey = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
        return Image.fromarray(((grey * 255 + 32767) // 65535).astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        grey = np.nan_to_num(np.asarray(image, dtype=np.float64))  # NaN -> 0, infinities -> clipped below
        grey = grey * 255 if grey.size and 0 <= grey.min() and grey.max() <= 1 else np.clip(grey, 0, 255)
        return Image.fromarray(np.round(grey).astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def resize_and_crop(image, pre: Preprocessing) -> np.ndarray:
    """PIL image (any mode) or HxWx3 uint8 array -> the centre crop as an HxWx3 uint8 RGB array."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    size = resized_size(image.size, pre)
    image = to_rgb(image).resize(size, resample=_RESAMPLE[pre.interpolation])
    crop = pre.input_size
    left = int(round((size[0] - crop) / 2.0))
    top = int(round((size[1] - crop) / 2.0))
    return np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.uint8)


def resized_size(size: tuple[int, int], pre: Preprocessing) -> tuple[int, int]:
    """torchvision Resize(int): the short side becomes `pre.resize_size`, the long side keeps the aspect ratio.
    A one-line error when the resized image would have more than MAX_PIXELS (a long, thin image)."""
    w, h = size
    if min(w, h) < 1:
        raise VanexportError(f"the image is {w} x {h} pixels: it has no pixels", "pass a picture")
    short = pre.resize_size
    new = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    if new[0] * new[1] > MAX_PIXELS:
        raise VanexportError(f"a {w} x {h} image resized to {new[0]} x {new[1]} would have more than {MAX_PIXELS} "
                             "pixels", "crop it closer to a square")
    return new


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
