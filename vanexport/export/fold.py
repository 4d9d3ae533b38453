"""VAN's deploy form for the CPU: every BatchNorm and layer scale folded into a convolution.

A VAN block is x' = x + l1 * (P2(LKA(GELU(P1(y)))) + y), y = BN1(x), then x'' = x' + l2 * MLP(BN2(x')). The inner
shortcut adds the normalised y, so BN1 cannot simply move into P1. Writing y = a1 * x + b1 (BN1's affine):

    x' = s * x + l1 * (P2(...) + b1),   s = 1 + l1 * a1

and carrying the residual stream scaled per channel, x~ = k * x with k' = k / s, the block becomes

    x~' = x~ + [k' * l1 * (P2(...) + b1)]        (BN1 folded into P1's input, k' l1 and b1 into P2)
    x~'' = x~' + [k' * l2 * MLP(BN2(x~' / k'))]   (BN2 and 1/k' folded into fc1's input, k' l2 into fc2)

Choosing each stage's starting k as the product of its blocks' s makes k = 1 at the stage end, so the stage
LayerNorm sees the true x; the starting k and the patch embedding's BatchNorm fold into its convolution. A block is
then 6 convolutions, 2 GELUs, the gating Mul and 2 Adds: 7 element-wise ops fewer than the faithful graph. All of it
is computed in float64 and stored in float32 (equal to the faithful model within ~1e-6 on b0's logits).

The stream is rescaled, so activations between blocks differ from the faithful model's: this form is for FP32
serving. FP16, INT8 and TensorRT start from the faithful export (TensorRT folds BatchNorm itself).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import VanexportError
from ..model.van import VAN

# |s| below this means a block (nearly) cancels its residual stream for a channel: k would explode.
MIN_SCALE = 1e-3


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) with BN(x) = a * x + b per channel (eval mode), in float64."""
    a = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    return a, bn.bias.double() - bn.running_mean.double() * a


def _conv(like: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    conv = nn.Conv2d(like.in_channels, like.out_channels, like.kernel_size, like.stride, like.padding, like.dilation,
                     like.groups, bias=True)
    with torch.no_grad():
        conv.weight.copy_(weight.float())
        conv.bias.copy_(bias.float())
    return conv


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    return conv.bias.double() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64)


def fold_input_affine(conv: nn.Conv2d, a: torch.Tensor, b: torch.Tensor) -> nn.Conv2d:
    """conv(a * x + b) as one convolution; exact only for a 1x1, unpadded, ungrouped conv (no padding sees b)."""
    if conv.kernel_size != (1, 1) or conv.groups != 1 or conv.padding not in ((0, 0), 0):
        raise ValueError("an input affine folds exactly only into a 1x1 unpadded dense convolution")
    w = conv.weight.double()
    return _conv(conv, w * a[None, :, None, None], _bias(conv) + w[:, :, 0, 0] @ b)


def fold_output_affine(conv: nn.Conv2d, a: torch.Tensor, b: torch.Tensor) -> nn.Conv2d:
    """a * conv(x) + b as one convolution (any kernel)."""
    return _conv(conv, conv.weight.double() * a[:, None, None, None], a * _bias(conv) + b)


class FoldedMlp(nn.Module):
    def __init__(self, fc1: nn.Conv2d, dwconv: nn.Conv2d, fc2: nn.Conv2d):
        super().__init__()
        self.fc1, self.dwconv, self.act, self.fc2 = fc1, dwconv, nn.GELU(), fc2

    def forward(self, x):
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class FoldedBlock(nn.Module):
    """One block on the rescaled stream: takes k_in * x, returns k_out * x''."""

    def __init__(self, block, k_in: torch.Tensor, where: str):
        super().__init__()
        l1, l2 = block.layer_scale_1.double(), block.layer_scale_2.double()
        a1, b1 = _bn_affine(block.norm1)
        a2, b2 = _bn_affine(block.norm2)
        s = 1.0 + l1 * a1
        worst = int(s.abs().argmin())
        if abs(float(s[worst])) < MIN_SCALE:
            raise VanexportError(f"cannot fold {where}: channel {worst} cancels its residual stream "
                                 f"(1 + layer_scale_1 x BatchNorm scale = {float(s[worst]):.1e})",
                                 "export without --fold")
        self.k_out = k = k_in / s
        attn = block.attn
        self.proj_1 = fold_input_affine(attn.proj_1, a1 / k_in, b1)
        self.act = nn.GELU()
        self.lka = attn.spatial_gating_unit
        self.proj_2 = fold_output_affine(attn.proj_2, k * l1, k * l1 * b1)
        mlp = block.mlp
        self.mlp = FoldedMlp(fold_input_affine(mlp.fc1, a2 / k, b2), mlp.dwconv.dwconv,
                             fold_output_affine(mlp.fc2, k * l2, torch.zeros_like(l2)))

    def forward(self, x):
        x = x + self.proj_2(self.lka(self.act(self.proj_1(x))))
        return x + self.mlp(x)


class FoldedVAN(nn.Module):
    """The same function as the VAN it is made from, with no BatchNorm and no layer scale left."""

    def __init__(self, van):
        super().__init__()
        self.num_stages = van.num_stages
        for i in range(van.num_stages):
            embed, blocks = getattr(van, f"patch_embed{i + 1}"), list(getattr(van, f"block{i + 1}"))
            a, b = _bn_affine(embed.norm)
            k = torch.ones_like(a)
            for block in blocks:  # the stage's starting scale: k ends at exactly 1
                k = k * (1.0 + block.layer_scale_1.double() * _bn_affine(block.norm1)[0])
            setattr(self, f"patch_embed{i + 1}", fold_output_affine(embed.proj, k * a, k * b))
            folded = []
            for j, block in enumerate(blocks):
                folded.append(FoldedBlock(block, k, f"stage {i + 1} block {j + 1}"))
                k = folded[-1].k_out
            setattr(self, f"block{i + 1}", nn.ModuleList(folded))
            setattr(self, f"norm{i + 1}", getattr(van, f"norm{i + 1}"))
        self.head = van.head
        self.eval()

    # the stages run exactly as VAN's own: only the blocks inside them differ
    forward_features = VAN.forward_features
    forward = VAN.forward


def fold_van(van) -> FoldedVAN:
    """The deploy form of `van` (left unchanged; it shares the depthwise convolutions, LayerNorms and head)."""
    with torch.no_grad():
        return FoldedVAN(van.eval())
