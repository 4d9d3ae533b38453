"""Semantic FPN on VAN (Kirillov et al., 2019), as the authors trained it on ADE20K.

Config read in Visual-Attention-Network/VAN-Segmentation at 8285fc7, configs/_base_/models/fpn_van.py: mmseg's `FPN`
neck (out_channels 256, num_outs 4, no norm, no activation, nearest upsampling) and `FPNHead` (channels 128,
feature strides 4, 8, 16, 32, BatchNorm + ReLU, bilinear upsampling with align_corners False, dropout before the
classifier: a no-op at inference). Module names follow mmseg's (mmseg/models/necks/fpn.py,
decode_heads/fpn_head.py), so the authors' checkpoints load without renaming.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from .dense_layers import ConvModule, Upsample2x, weight_of
from .features import FEATURE_STRIDES


class FPNNeck(nn.Module):
    """Lateral 1x1 convs, a top-down path (nearest upsampling, added), then a 3x3 conv per level."""

    def __init__(self, in_channels, out_channels: int = 256):
        super().__init__()
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1, norm=False, act=False) for c in in_channels)
        self.fpn_convs = nn.ModuleList(ConvModule(out_channels, out_channels, 3, norm=False, act=False)
                                       for _ in in_channels)

    def forward(self, feats):
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:],
                                                              mode="nearest")
        return [conv(lat) for conv, lat in zip(self.fpn_convs, laterals)]


class FPNHead(nn.Module):
    """Per level: log2(stride/4) blocks of (3x3 ConvModule, 2x bilinear upsampling) (level 0: one conv, no
    upsampling), summed at stride 4, then a 1x1 classifier `conv_seg`. Logits at 1/4 of the input."""

    def __init__(self, in_channels: int = 256, channels: int = 128, num_classes: int = 150,
                 strides=FEATURE_STRIDES):
        super().__init__()
        self.scale_heads = nn.ModuleList()
        for stride in strides:
            layers = []
            for k in range(max(1, int(math.log2(stride) - math.log2(strides[0])))):
                layers.append(ConvModule(in_channels if k == 0 else channels, channels, 3))
                if stride != strides[0]:
                    layers.append(Upsample2x())
            self.scale_heads.append(nn.Sequential(*layers))
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats):
        # mmseg resizes each level to level 0's size before adding; with H, W multiples of 32 they already match.
        out = self.scale_heads[0](feats[0])
        for head, f in zip(self.scale_heads[1:], feats[1:]):
            out = out + head(f)
        return self.conv_seg(out)


@dataclass(frozen=True)
class FPNSizes:
    in_channels: tuple[int, ...]  # the backbone's stage widths
    neck_channels: int = 256
    channels: int = 128
    num_classes: int = 150


def fpn_sizes(sd: dict) -> FPNSizes:
    """The neck and head widths and the class count an (official-named) Semantic FPN state dict holds."""
    lateral = [weight_of(sd, f"neck.lateral_convs.{i}.conv.weight") for i in range(len(FEATURE_STRIDES))]
    return FPNSizes(in_channels=tuple(int(w.shape[1]) for w in lateral),
                    neck_channels=int(lateral[0].shape[0]),
                    channels=int(weight_of(sd, "decode_head.scale_heads.0.0.conv.weight").shape[0]),
                    num_classes=int(weight_of(sd, "decode_head.conv_seg.weight").shape[0]))


class SemanticFPN(nn.Module):
    """VAN backbone -> FPN neck -> FPNHead. Input: NCHW images (H, W multiples of 32); output: logits (N, classes,
    H/4, W/4)."""

    def __init__(self, backbone, sizes: FPNSizes):
        super().__init__()
        self.backbone = backbone
        self.neck = FPNNeck(sizes.in_channels, sizes.neck_channels)
        self.decode_head = FPNHead(sizes.neck_channels, sizes.channels, sizes.num_classes)

    def forward(self, x):
        return self.decode_head(self.neck(self.backbone.forward_stages(x)))
