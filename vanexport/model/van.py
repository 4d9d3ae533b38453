"""The Visual Attention Network (Guo et al., 2022), written from the paper and VAN_FACTS.md.

Module and parameter names follow the authors' reference code, so official checkpoints load
without renaming. One deliberate difference in form, not in value: the stage LayerNorm is applied
as permute -> LayerNorm -> permute instead of flatten/transpose/LN/reshape. The result is the same
to the bit, and the exported graph has no Reshape that depends on the input's H and W.
"""
from __future__ import annotations

import torch
from torch import nn


class DWConv(nn.Module):
    """Depthwise 3x3 convolution of the MLP (wrapped so the key is `mlp.dwconv.dwconv`)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x):
        return self.dwconv(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x):
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class LKA(nn.Module):
    """Large kernel attention: depthwise 5x5, depthwise dilated 7x7 (dilation 3), pointwise; then gate."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, 7, padding=9, groups=dim, dilation=3)
        self.conv1 = nn.Conv2d(dim, dim, 1)

    def forward(self, u):
        return u * self.conv1(self.conv_spatial(self.conv0(u)))


class Attention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = LKA(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, y):
        # The inner shortcut adds the *normalised* input y (this is why norm1 cannot be folded away).
        return self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(y)))) + y


class Block(nn.Module):
    def __init__(self, dim: int, mlp_ratio: int, layer_scale_init: float = 1e-2):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = Attention(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = Mlp(dim, dim * mlp_ratio)
        self.layer_scale_1 = nn.Parameter(torch.full((dim,), layer_scale_init))
        self.layer_scale_2 = nn.Parameter(torch.full((dim,), layer_scale_init))

    def forward(self, x):
        x = x + self.layer_scale_1[:, None, None] * self.attn(self.norm1(x))
        return x + self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_chans: int, dim: int, patch_size: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch_size, stride=stride, padding=patch_size // 2)
        self.norm = nn.BatchNorm2d(dim)

    def forward(self, x):
        return self.norm(self.proj(x))


class VAN(nn.Module):
    """VAN classifier. Input: NCHW float images (H, W multiples of 32). Output: logits (N, num_classes)."""

    def __init__(self, embed_dims, depths, mlp_ratios=(8, 8, 4, 4), num_classes: int = 1000,
                 in_chans: int = 3, ln_eps: float = 1e-6):
        super().__init__()
        self.embed_dims, self.depths, self.num_classes = list(embed_dims), list(depths), num_classes
        self.num_stages = len(depths)
        for i in range(self.num_stages):
            patch_embed = OverlapPatchEmbed(
                in_chans if i == 0 else embed_dims[i - 1], embed_dims[i],
                patch_size=7 if i == 0 else 3, stride=4 if i == 0 else 2)
            blocks = nn.ModuleList(Block(embed_dims[i], mlp_ratios[i]) for _ in range(depths[i]))
            setattr(self, f"patch_embed{i + 1}", patch_embed)
            setattr(self, f"block{i + 1}", blocks)
            setattr(self, f"norm{i + 1}", nn.LayerNorm(embed_dims[i], eps=ln_eps))
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()

    def set_layernorm_eps(self, eps: float) -> None:
        for i in range(self.num_stages):
            getattr(self, f"norm{i + 1}").eps = eps

    def forward_features(self, x):
        for i in range(self.num_stages):
            x = getattr(self, f"patch_embed{i + 1}")(x)
            for blk in getattr(self, f"block{i + 1}"):
                x = blk(x)
            x = getattr(self, f"norm{i + 1}")(x.permute(0, 2, 3, 1))  # LayerNorm over channels, NHWC
            if i != self.num_stages - 1:
                x = x.permute(0, 3, 1, 2)
        return x.mean(dim=(1, 2))  # average over tokens

    def forward_stages(self, x) -> list:
        """Every stage's output after its LayerNorm, NCHW, at strides 4, 8, 16, 32: what dense heads read
        (as the authors' segmentation backbone returns them)."""
        outs = []
        for i in range(self.num_stages):
            x = getattr(self, f"patch_embed{i + 1}")(x)
            for blk in getattr(self, f"block{i + 1}"):
                x = blk(x)
            x = getattr(self, f"norm{i + 1}")(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            outs.append(x)
        return outs

    def forward(self, x):
        return self.head(self.forward_features(x))
