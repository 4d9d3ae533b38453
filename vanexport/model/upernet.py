"""UperNet on VAN (Xiao et al., 2018), as the authors trained it on ADE20K.

Config read in Visual-Attention-Network/VAN-Segmentation at 8285fc7, configs/_base_/models/upernet_van.py: mmseg's
`UPerHead` (pool scales 1, 2, 3, 6; channels 512; BatchNorm + ReLU; align_corners False) on the four stage outputs.
Its FCN auxiliary head (on stage 3) only adds a training loss: inference drops it, and so does loading.
Module names follow mmseg's (mmseg/models/decode_heads/uper_head.py and psp_head.py's PPM).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VanexportError
from .dense_layers import ConvModule, resize_bilinear, weight_of

POOL_SCALES = (1, 2, 3, 6)


def pooling_matrix(n: int, s: int, dtype) -> torch.Tensor:
    """(s, n): row i averages the cells adaptive average pooling gives output i, [floor(i n/s), ceil((i+1) n/s))."""
    m = torch.zeros(s, n, dtype=dtype)
    for i in range(s):
        lo, hi = (i * n) // s, -(-((i + 1) * n) // s)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def adaptive_avg_pool(x, s: int):
    """F.adaptive_avg_pool2d to s x s; in an ONNX export, as two MatMuls with constant pooling matrices, because
    ONNX has no adaptive pooling and torch.onnx refuses a size that s does not divide (16 for s = 3 at 512x512).
    The matrices fit the traced size only: such an export has a fixed H and W."""
    if not torch.onnx.is_in_onnx_export():
        return F.adaptive_avg_pool2d(x, s)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    return pooling_matrix(h, s, x.dtype) @ x @ pooling_matrix(w, s, x.dtype).T


class PPM(nn.ModuleList):
    """Pyramid pooling: per scale, adaptive average pooling to scale x scale, a 1x1 ConvModule, and bilinear
    upsampling back to the input's size."""

    def __init__(self, pool_scales, in_channels: int, channels: int):
        super().__init__(nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvModule(in_channels, channels, 1))
                         for s in pool_scales)

    def forward(self, x):
        return [resize_bilinear(conv(adaptive_avg_pool(x, pool.output_size)), x.shape[-2:]) for pool, conv in self]


class UPerHead(nn.Module):
    """PPM on the last level, lateral 1x1 convs on the others, a top-down path (bilinear, added), a 3x3 conv per
    level, everything upsampled to stride 4, concatenated, fused by a 3x3 conv, then the 1x1 classifier."""

    def __init__(self, in_channels, channels: int = 512, num_classes: int = 150, pool_scales=POOL_SCALES):
        super().__init__()
        self.psp_modules = PPM(pool_scales, in_channels[-1], channels)
        self.bottleneck = ConvModule(in_channels[-1] + len(pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(ConvModule(c, channels, 1) for c in in_channels[:-1])
        self.fpn_convs = nn.ModuleList(ConvModule(channels, channels, 3) for _ in in_channels[:-1])
        self.fpn_bottleneck = ConvModule(len(in_channels) * channels, channels, 3)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats):
        top = feats[-1]
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        laterals.append(self.bottleneck(torch.cat([top, *self.psp_modules(top)], dim=1)))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + resize_bilinear(laterals[i], laterals[i - 1].shape[-2:])
        outs = [conv(lat) for conv, lat in zip(self.fpn_convs, laterals)] + [laterals[-1]]
        size = outs[0].shape[-2:]
        outs = [outs[0]] + [resize_bilinear(o, size) for o in outs[1:]]
        return self.conv_seg(self.fpn_bottleneck(torch.cat(outs, dim=1)))


@dataclass(frozen=True)
class UperNetSizes:
    in_channels: tuple[int, ...]  # the backbone's stage widths
    channels: int = 512
    num_classes: int = 150
    pool_scales: tuple[int, ...] = POOL_SCALES


def upernet_sizes(sd: dict, in_channels) -> UperNetSizes:
    """The head width and class count an (official-named) UperNet state dict holds. The pool scales hold no
    weights: their count is checked against the authors' (1, 2, 3, 6)."""
    branches = {k.split(".")[2] for k in sd if k.startswith("decode_head.psp_modules.")}
    if len(branches) != len(POOL_SCALES):
        raise VanexportError(f"the UperNet checkpoint has {len(branches)} pyramid pooling branches, not "
                             f"{len(POOL_SCALES)}", "vanexport reads UperNet with pool scales 1, 2, 3, 6 "
                             "(the authors' configuration)")
    return UperNetSizes(in_channels=tuple(in_channels),
                        channels=int(weight_of(sd, "decode_head.bottleneck.conv.weight").shape[0]),
                        num_classes=int(weight_of(sd, "decode_head.conv_seg.weight").shape[0]))


class UperNet(nn.Module):
    """VAN backbone -> UPerHead. Input: NCHW images (H, W multiples of 32); output: logits (N, classes, H/4, W/4)."""

    def __init__(self, backbone, sizes: UperNetSizes):
        super().__init__()
        self.backbone = backbone
        self.decode_head = UPerHead(sizes.in_channels, sizes.channels, sizes.num_classes, sizes.pool_scales)

    def forward(self, x):
        return self.decode_head(self.backbone.forward_stages(x))
