"""The numpy/Pillow preprocessing equals the PyTorch evaluation transform to 1e-6.

torchvision cannot be installed here, so the reference below is timm's eval pipeline
(Resize(floor(size / crop_pct), bicubic) -> CenterCrop(size) -> ToTensor -> Normalize(mean, std)) written with
torch ops, following torchvision's definitions:
- Resize(int) on a PIL image: the short side becomes the int, the long side int(int * long / short)
  (torchvision's _compute_resized_output_size), resized by PIL itself with the same filter. The resize is
  therefore the same Pillow call on both sides; what is compared is everything after it:
- CenterCrop: top = int(round((H - crop) / 2.0)), left likewise (torchvision's F.center_crop), done as torch slicing;
- ToTensor: HWC uint8 -> CHW float in [0, 1] (torch permute and division by 255);
- Normalize: (x - mean[c]) / std[c] with torch broadcasting.
"""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from vanexport.data.preprocess import preprocess_image
from vanexport.model.variants import Preprocessing


def torch_eval_transform(image: Image.Image, input_size: int, crop_pct: float, mean, std) -> torch.Tensor:
    image = image.convert("RGB")
    resize = math.floor(input_size / crop_pct)
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = resize, int(resize * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    t = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    top = int(round((new_h - input_size) / 2.0))
    left = int(round((new_w - input_size) / 2.0))
    t = t[:, top:top + input_size, left:left + input_size]
    return (t - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def _photo(seed: int, w: int, h: int, mode: str) -> Image.Image:
    rng = np.random.default_rng(seed)
    # smooth gradients plus noise: a resize filter error would show on both
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), (xx + yy) * 127 / max(w + h - 2, 1)], -1)
    img = np.clip(base + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(img).convert(mode)


@pytest.mark.parametrize("w, h, mode", [(640, 480, "RGB"), (333, 517, "RGB"), (248, 248, "RGB"), (1000, 251, "RGB"),
                                        (97, 131, "RGB"), (300, 200, "L"), (300, 220, "RGBA"), (257, 300, "P")])
@pytest.mark.parametrize("size", [224, 64])
def test_numpy_preprocessing_matches_the_torch_eval_transform(w, h, mode, size):
    pre = Preprocessing().at_size(size)
    image = _photo(w * h, w, h, mode)
    ours = preprocess_image(image, pre)
    ref = torch_eval_transform(image, size, pre.crop_pct, pre.mean, pre.std).numpy()
    assert ours.shape == ref.shape == (3, size, size) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() <= 1e-6


def test_other_statistics_are_honoured():
    """Not only VAN's 0.5/0.5: the mean/std and crop_pct of the record are the ones applied."""
    pre = Preprocessing(input_size=224, crop_pct=0.875, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    image = _photo(3, 500, 375, "RGB")
    ref = torch_eval_transform(image, 224, 0.875, pre.mean, pre.std).numpy()
    assert np.abs(preprocess_image(image, pre) - ref).max() <= 1e-6
    assert np.abs(preprocess_image(image, Preprocessing()) - ref).max() > 0.1  # the statistics matter
