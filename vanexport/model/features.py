"""VAN as a backbone: the classifier without its head, returning the four stage outputs for your own heads.

As the authors' segmentation backbone (Visual-Attention-Network/VAN-Segmentation, van.py at 8285fc7): each output is
taken after its stage's LayerNorm, as NCHW maps at strides 4, 8, 16 and 32 of the input.
"""
from __future__ import annotations

from torch import nn

from .van import VAN
from .variants import Variant

FEATURE_NAMES = ("stage1", "stage2", "stage3", "stage4")
FEATURE_STRIDES = (4, 8, 16, 32)


def create_backbone(variant: Variant) -> VAN:
    """VAN-`variant` with no classification head (its state dict holds the backbone's keys only)."""
    # eps 1e-5: the authors' segmentation backbone builds `nn.LayerNorm(embed_dims[i])` (the classifier: 1e-6)
    return VAN(variant.embed_dims, variant.depths, variant.mlp_ratios, num_classes=0, ln_eps=1e-5)


class VanFeatures(nn.Module):
    """Input: NCHW images (H, W multiples of 32). Output: a tuple of the four stage maps, FEATURE_NAMES order."""

    def __init__(self, backbone: VAN):
        super().__init__()
        self.backbone = backbone

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(self.backbone.embed_dims)

    def forward(self, x):
        return tuple(self.backbone.forward_stages(x))
