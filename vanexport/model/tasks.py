"""What a VAN model does (its task), the dense models the authors trained, and the preprocessing they were evaluated
with: plain records, without torch, so the artifact formats and the device side can read them.

Facts read in Visual-Attention-Network/VAN-Segmentation at 8285fc7 (README.md, configs/).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import VanexportError
from .variants import Preprocessing

TASKS = ("classify", "segment-fpn", "segment-upernet", "features")
DENSE_TASKS = TASKS[1:]
HEAD_NAMES = {"classify": "a classifier", "segment-fpn": "Semantic FPN", "segment-upernet": "UperNet",
              "features": "backbone features"}


def check_task(task) -> str:
    if task not in TASKS:
        raise VanexportError(f"unknown task {str(task)[:40]!r}", f"a task is one of {', '.join(TASKS)}")
    return task


@dataclass(frozen=True)
class SegmentationPreprocessing:
    """mmseg's ADE20K test pipeline as the authors ran it (configs/_base_/datasets/ade20k.py): resize keeping the
    aspect ratio so the short side is 512 and the long side at most 2048 (bilinear), sizes rounded to a multiple of
    32, RGB normalised with the ImageNet statistics on the 0-255 scale (not the classifiers' 0.5 / 0.5 on 0-1),
    whole-image inference, logits resized bilinearly (align_corners False) back to the image. `input_size` is the
    side an export was made at."""

    input_size: int = 512
    short_side: int = 512
    long_side_max: int = 2048
    size_divisor: int = 32
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)

    def to_dict(self) -> dict:
        return {"input_size": self.input_size, "short_side": self.short_side, "long_side_max": self.long_side_max,
                "size_divisor": self.size_divisor, "interpolation": self.interpolation, "mean": list(self.mean),
                "std": list(self.std), "color": "RGB", "layout": "NCHW", "scale": "0-255",
                "logits_resize": "bilinear, align_corners=False"}

    def square(self, size: int) -> Preprocessing:
        """The same normalisation as a classifier-style transform onto a size x size input (short side resized to
        `size`, centre crop): (255 x - mean) / std = (x - mean/255) / (std/255) on the [0, 1] scale. For checking a
        fixed-size export on photos; whole-image inference keeps the aspect ratio instead."""
        return Preprocessing(input_size=size, crop_pct=1.0, interpolation=self.interpolation,
                             mean=tuple(m / 255 for m in self.mean), std=tuple(s / 255 for s in self.std))

    @classmethod
    def from_dict(cls, d: dict) -> "SegmentationPreprocessing":
        return cls(input_size=int(d["input_size"]), short_side=int(d["short_side"]),
                   long_side_max=int(d["long_side_max"]), size_divisor=int(d["size_divisor"]),
                   interpolation=str(d["interpolation"]), mean=tuple(float(m) for m in d["mean"]),
                   std=tuple(float(s) for s in d["std"]))


@dataclass(frozen=True)
class DenseConfig:
    """One model the authors trained on ADE20K (150 classes), with its published single-scale mIoU."""

    task: str
    variant: str
    pretrained: str  # the backbone's ImageNet weights: in1k or in22k
    miou: float


DENSE_CONFIGS = [
    DenseConfig("segment-fpn", "b0", "in1k", 38.5), DenseConfig("segment-fpn", "b1", "in1k", 42.9),
    DenseConfig("segment-fpn", "b2", "in1k", 46.7), DenseConfig("segment-fpn", "b3", "in1k", 48.1),
    DenseConfig("segment-upernet", "b0", "in1k", 41.1), DenseConfig("segment-upernet", "b1", "in1k", 44.9),
    DenseConfig("segment-upernet", "b2", "in1k", 50.1), DenseConfig("segment-upernet", "b3", "in1k", 50.6),
    DenseConfig("segment-upernet", "b4", "in1k", 52.2), DenseConfig("segment-upernet", "b4", "in22k", 53.5),
    DenseConfig("segment-upernet", "b5", "in22k", 53.9), DenseConfig("segment-upernet", "b6", "in22k", 54.7),
]
ADE20K_CLASSES = 150
