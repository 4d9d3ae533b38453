"""Dense VAN models: Semantic FPN, UperNet and backbone features. The authors' configurations per variant, the
preprocessing their segmentation models were evaluated with, and loading whichever model a checkpoint holds.

Facts read in Visual-Attention-Network/VAN-Segmentation at 8285fc7 (README.md, configs/, van.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import VanexportError
from . import checkpoints
from .factory import WeightsInfo, randomize, resolve_weights, state_dict_mismatch
from .features import VanFeatures, create_backbone
from .semantic_fpn import FPNSizes, SemanticFPN, fpn_sizes
from .upernet import UperNet, UperNetSizes, upernet_sizes
from .variants import Variant, get_variant, variant_from_shapes

DENSE_TASKS = ("segment-fpn", "segment-upernet", "features")
HEAD_NAMES = {"segment-fpn": "Semantic FPN", "segment-upernet": "UperNet", "features": "backbone features"}


@dataclass(frozen=True)
class SegmentationPreprocessing:
    """mmseg's ADE20K test pipeline as the authors ran it (configs/_base_/datasets/ade20k.py): resize keeping the
    aspect ratio so the short side is 512 and the long side at most 2048 (bilinear), sizes rounded to a multiple of
    32, RGB normalised with the ImageNet statistics on the 0-255 scale (not the classifiers' 0.5 / 0.5 on 0-1),
    whole-image inference, logits resized bilinearly (align_corners False) back to the image."""

    short_side: int = 512
    long_side_max: int = 2048
    size_divisor: int = 32
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)

    def to_dict(self) -> dict:
        return {"short_side": self.short_side, "long_side_max": self.long_side_max,
                "size_divisor": self.size_divisor, "interpolation": self.interpolation, "mean": list(self.mean),
                "std": list(self.std), "color": "RGB", "layout": "NCHW", "scale": "0-255",
                "logits_resize": "bilinear, align_corners=False"}


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


def create_dense_model(task: str, variant: str | Variant, sd: dict | None = None):
    """The `task` model on VAN-`variant`: with the sizes an (official-named) state dict holds, or the authors'
    (FPN neck 256 / head 128, UperNet 512, 150 classes) when there is none."""
    v = variant if isinstance(variant, Variant) else get_variant(variant)
    backbone = create_backbone(v)
    if task == "features":
        return VanFeatures(backbone)
    if task == "segment-fpn":
        return SemanticFPN(backbone, fpn_sizes(sd) if sd else FPNSizes(v.embed_dims))
    if task == "segment-upernet":
        return UperNet(backbone, upernet_sizes(sd, v.embed_dims) if sd else UperNetSizes(v.embed_dims))
    raise VanexportError(f"unknown dense task '{task}'", f"choose one of {', '.join(DENSE_TASKS)}")


def num_classes_of(model) -> int:
    """Classes a dense model predicts (0 for backbone features)."""
    head = getattr(model, "decode_head", None)
    return int(head.conv_seg.out_channels) if head is not None else 0


def load_dense_model(variant: str | Variant | None = None, weights: str | None = None, task: str | None = None,
                     seed: int = 0):
    """Return (model in eval mode, variant, WeightsInfo, task) for a dense task.

    `task` None: the one the checkpoint holds (an error for a classifier: use factory.load_model). "features"
    takes the backbone of any checkpoint (classifier, Semantic FPN or UperNet). Without weights: the authors'
    sizes with random weights from `seed` (for testing the pipeline only)."""
    if weights is None:
        if task not in DENSE_TASKS:
            raise VanexportError("a dense model without --weights needs its task",
                                 f"pass --task with one of {', '.join(DENSE_TASKS)}, or a checkpoint")
        v = get_variant(variant or "b0") if not isinstance(variant, Variant) else variant
        model = create_dense_model(task, v)
        randomize(model, seed)
        sd_hash = checkpoints.weights_sha256(model.state_dict())
        return model, v, WeightsInfo(f"random(seed={seed})", "random", sd_hash, num_classes_of(model)), task

    path, source = resolve_weights(weights, variant)
    sd, layout = checkpoints.to_official(checkpoints.read_checkpoint(path))
    found = checkpoints.detect_task(sd)
    task = _chosen_task(task, found, path)
    if task == "features":
        sd = {k: t for k, t in sd.items() if not k.startswith(("head.", "neck.", "decode_head."))}
    v = _variant_for(sd, variant, path)
    model = create_dense_model(task, v, sd)
    model.backbone.set_layernorm_eps(checkpoints.layernorm_eps(layout))
    sd = {(k if k.startswith(("neck.", "decode_head.")) else "backbone." + k): t for k, t in sd.items()}
    mismatch = state_dict_mismatch(model, sd)
    if mismatch:
        raise VanexportError(f"'{path}' does not fit {HEAD_NAMES[task]} on VAN-{v.name}: {mismatch}",
                             "the checkpoint is incomplete or from a modified model")
    model.load_state_dict(sd, strict=True)
    model.eval()
    info = WeightsInfo(source, layout, checkpoints.weights_sha256(model.state_dict()), num_classes_of(model),
                       file=str(path))
    return model, v, info, task


def _chosen_task(task: str | None, found: str, path) -> str:
    if task is None or task == found:
        if found == "classify":
            raise VanexportError(f"'{path}' holds a classifier, not a dense model",
                                 "load it as a classifier, or ask for its backbone features (--task features)")
        return found
    if task == "features":
        return task
    raise VanexportError(f"--task {task} but '{path}' holds {HEAD_NAMES.get(found, 'a classifier')}",
                         f"drop --task (the checkpoint says what it is) or pass --task features for its backbone")


def _variant_for(sd: dict, variant, path) -> Variant:
    arch = checkpoints.infer_architecture(sd)
    guessed = variant_from_shapes(arch.embed_dims, arch.depths)
    if variant is not None:
        v = variant if isinstance(variant, Variant) else get_variant(variant)
        if guessed is not None and guessed.name != v.name:
            raise VanexportError(f"'{path}' holds a VAN-{guessed.name} backbone, not VAN-{v.name}",
                                 f"pass --variant {guessed.name} or leave --variant out")
        return v
    if guessed is None:
        raise VanexportError(f"'{path}' does not look like any VAN variant "
                             f"(embed dims {arch.embed_dims}, depths {arch.depths})",
                             "pass --variant and check the file is a VAN checkpoint")
    return guessed
