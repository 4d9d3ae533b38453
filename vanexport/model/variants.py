"""The VAN variants b0..b6 and the evaluation preprocessing each one was trained with."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..errors import VanexportError


@dataclass(frozen=True)
class Preprocessing:
    """Evaluation transform: resize the short side (bicubic), centre-crop, scale to [0, 1], normalise.

    VAN uses mean = std = 0.5, not the ImageNet statistics: getting this wrong silently costs accuracy.
    """

    input_size: int = 224
    crop_pct: float = 0.9
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @property
    def resize_size(self) -> int:
        return math.floor(self.input_size / self.crop_pct)  # 224 -> 248

    def at_size(self, input_size: int) -> "Preprocessing":
        return dataclasses.replace(self, input_size=input_size)

    def to_dict(self) -> dict:
        return {"input_size": self.input_size, "resize_size": self.resize_size, "crop_pct": self.crop_pct,
                "interpolation": self.interpolation, "mean": list(self.mean), "std": list(self.std),
                "color": "RGB", "layout": "NCHW", "scale": "1/255"}

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        return cls(input_size=int(d["input_size"]), crop_pct=float(d["crop_pct"]),
                   interpolation=d["interpolation"], mean=tuple(d["mean"]), std=tuple(d["std"]))


@dataclass(frozen=True)
class Variant:
    name: str
    old_name: str | None
    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    params_m: float  # with a 1000-class head, from the paper's table
    gmacs: float  # multiply-accumulates at 224x224
    top1: float | None  # ImageNet-1k top-1 of the official weights
    checkpoint_url: str | None = None
    checkpoint_sha256: str | None = None  # full digest or a prefix (OpenMMLab file names carry 8 hex digits)
    mlp_ratios: tuple[int, int, int, int] = (8, 8, 4, 4)
    preprocessing: Preprocessing = Preprocessing()


_HF = "https://huggingface.co/Visual-Attention-Network/VAN-{}-original/resolve/main/{}"

VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("b0", "tiny", (32, 64, 160, 256), (3, 3, 5, 2), 4.11, 0.88, 75.4, _HF.format("Tiny", "van_tiny_754.pth.tar")),
    Variant("b1", "small", (64, 128, 320, 512), (2, 2, 4, 2), 13.86, 2.52, 81.1, _HF.format("Small", "van_small_811.pth.tar")),
    Variant("b2", "base", (64, 128, 320, 512), (3, 3, 12, 3), 26.58, 5.03, 82.8, _HF.format("Base", "van_base_828.pth.tar")),
    Variant("b3", "large", (64, 128, 320, 512), (3, 5, 27, 3), 44.77, 8.99, 83.9, _HF.format("Large", "van_large_839.pth.tar")),
    # b4 has no file from the authors; mmpretrain's converted one (mmpretrain layout, sha256 prefix in its name).
    Variant("b4", None, (64, 128, 320, 512), (3, 6, 40, 3), 60.28, 12.2, 84.1,
            "https://download.openmmlab.com/mmclassification/v0/van/van-b4_3rdparty_in1k_20220909-f4665b92.pth",
            "f4665b92"),
    Variant("b5", None, (96, 192, 480, 768), (3, 3, 24, 3), 89.97, 17.2, None),
    Variant("b6", None, (96, 192, 384, 768), (6, 6, 90, 6), 199.83, 38.7, None),
]}
_ALIASES = {v.old_name: v.name for v in VARIANTS.values() if v.old_name}
DEFAULT_VARIANT = "b0"


def get_variant(name: str) -> Variant:
    key = name.lower().removeprefix("van_").removeprefix("van-")
    key = _ALIASES.get(key, key)
    if key not in VARIANTS:
        raise VanexportError(f"unknown VAN variant '{name}'", f"choose one of {', '.join(VARIANTS)}")
    return VARIANTS[key]


def variant_from_shapes(embed_dims, depths) -> Variant | None:
    """The variant whose dims and depths match a checkpoint, if any."""
    for v in VARIANTS.values():
        if tuple(embed_dims) == v.embed_dims and tuple(depths) == v.depths:
            return v
    return None


def check_img_size(img_size: int) -> int:
    if img_size <= 0 or img_size % 32:
        lo, hi = max(32, img_size // 32 * 32), (img_size // 32 + 1) * 32
        raise VanexportError(f"image size {img_size} is not a multiple of 32",
                             f"VAN downsamples by 32; use e.g. --img-size {lo} or {hi}")
    return img_size


def peak_memory_bytes(v: Variant, img_size: int, batch: int = 3) -> int:
    """About how much memory exporting (or running) VAN-`v` at `img_size` on `batch` images takes at the peak.

    Activations dominate: the largest is the stage-1 MLP's hidden tensor, (size/4)^2 x dims[0] x 8 floats per image.
    Measured for b0 (export + simplify + validation at batch 3): 683 MiB at 224, 1421 MiB at 448, 3341 MiB at 896,
    which this bounds from above."""
    hidden = (img_size // 4) ** 2 * v.embed_dims[0] * v.mlp_ratios[0] * 4
    return 512 * 2**20 + int(v.params_m * 4e6) + 20 * max(batch, 1) * hidden


def check_fits_in_memory(v: Variant, img_size: int, batch: int, available: int | None, what: str) -> None:
    """Refuse, before any slow work, a size that cannot fit in this machine's memory."""
    need = peak_memory_bytes(v, img_size, batch)
    if available is not None and need > available:
        raise VanexportError(f"{what} VAN-{v.name} at {img_size}x{img_size} needs about {need / 2**30:.1f} GiB of "
                             f"memory, and this machine has {available / 2**30:.1f} GiB available",
                             "use a smaller --img-size (224 is what VAN was trained at)"
                             + (" or --batch" if batch > 3 else ""))
