"""The building blocks mmsegmentation's necks and decode heads are made of, under the names their checkpoints use.

Read in mmcv's ConvModule (as mmseg's FPN neck, FPNHead and UPerHead call it) and mmseg's `Upsample` / `resize`
(mmseg/models/necks/fpn.py, decode_heads/fpn_head.py, uper_head.py, psp_head.py; mmsegmentation v0.26 and 1.x).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..errors import VanexportError


class ConvModule(nn.Module):
    """Conv, then BatchNorm, then ReLU, as mmcv's ConvModule with a norm: the conv has no bias when BatchNorm
    follows. The FPN neck uses it bare (no norm, no activation: the conv keeps its bias). Submodules are named
    `conv` and `bn` so mmseg checkpoints load as they are."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, norm: bool = True, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not norm)
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.activate = nn.ReLU() if act else nn.Identity()

    def forward(self, x):
        return self.activate(self.bn(self.conv(x)))


class Upsample2x(nn.Module):
    """mmseg's `Upsample(scale_factor=2, mode='bilinear', align_corners=False)` (no weights)."""

    def forward(self, x):
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def resize_bilinear(x, size):
    """mmseg's `resize(..., mode='bilinear', align_corners=False)`: every VAN head is trained with align_corners
    False."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def weight_of(sd: dict, key: str):
    """The tensor a head's size is read from, or a one-line error naming the key the checkpoint lacks."""
    if key not in sd:
        raise VanexportError(f"the checkpoint has no '{key}', which this head needs",
                             "pass the complete checkpoint the authors' VAN-Segmentation or mmsegmentation saved")
    return sd[key]
