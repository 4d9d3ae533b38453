"""Dense VAN models (Semantic FPN, UperNet, backbone features): building them, loading whichever model a checkpoint
holds, and what an export records about them. Their configurations and preprocessing are in model/tasks.py.

Facts read in Visual-Attention-Network/VAN-Segmentation at 8285fc7 (README.md, configs/, van.py).
"""
from __future__ import annotations

from ..errors import VanexportError
from . import checkpoints
from .factory import WeightsInfo, randomize, resolve_weights, state_dict_mismatch
from .features import FEATURE_NAMES, FEATURE_STRIDES, VanFeatures, create_backbone
from .semantic_fpn import FPNSizes, SemanticFPN, fpn_sizes
from .tasks import ADE20K_CLASSES, DENSE_TASKS, HEAD_NAMES
from .upernet import UperNet, UperNetSizes, upernet_sizes
from .variants import Variant, get_variant, variant_from_shapes

def create_dense_model(task: str, variant: str | Variant, sd: dict | None = None,
                       num_classes: int = ADE20K_CLASSES):
    """The `task` model on VAN-`variant`: with the sizes an (official-named) state dict holds, or the authors'
    (FPN neck 256 / head 128, UperNet 512; `num_classes`, ADE20K's 150 by default) when there is none."""
    v = variant if isinstance(variant, Variant) else get_variant(variant)
    backbone = create_backbone(v)
    if task == "features":
        return VanFeatures(backbone)
    if task == "segment-fpn":
        return SemanticFPN(backbone, fpn_sizes(sd) if sd else FPNSizes(v.embed_dims, num_classes=num_classes))
    if task == "segment-upernet":
        return UperNet(backbone, upernet_sizes(sd, v.embed_dims) if sd
                       else UperNetSizes(v.embed_dims, num_classes=num_classes))
    raise VanexportError(f"unknown dense task '{task}'", f"choose one of {', '.join(DENSE_TASKS)}")


def num_classes_of(model) -> int:
    """Classes a dense model predicts (0 for backbone features)."""
    head = getattr(model, "decode_head", None)
    return int(head.conv_seg.out_channels) if head is not None else 0


def task_of(model) -> str:
    """The task of a model vanexport built: classify, segment-fpn, segment-upernet or features."""
    for kind, task in ((SemanticFPN, "segment-fpn"), (UperNet, "segment-upernet"), (VanFeatures, "features")):
        if isinstance(model, kind):
            return task
    return "classify"


def head_record(model) -> dict:
    """What an export records about a dense model's head (its kind, widths, output stride); {} for a classifier."""
    if isinstance(model, SemanticFPN):
        return {"name": "semantic-fpn", "neck_channels": model.neck.fpn_convs[0].conv.out_channels,
                "channels": model.decode_head.conv_seg.in_channels, "output_stride": 4}
    if isinstance(model, UperNet):
        return {"name": "upernet", "channels": model.decode_head.conv_seg.in_channels,
                "pool_scales": [branch[0].output_size for branch in model.decode_head.psp_modules],
                "output_stride": 4}
    if isinstance(model, VanFeatures):
        return {"name": "features", "outputs": list(FEATURE_NAMES), "strides": list(FEATURE_STRIDES)}
    return {}


def load_for_task(variant: str | Variant | None = None, weights: str | None = None, num_classes: int | None = None,
                  task: str | None = None, seed: int = 0, quiet: bool = False):
    """(model, variant, WeightsInfo) of whatever `weights` holds (classifier or dense model), or of `task` when it
    is given. Without weights: a classifier, or the dense `task` model, with random weights from `seed`."""
    from .factory import load_model

    if task is None and weights is not None:
        # Read once more than strictly needed (the loaders read the file again): checkpoints say what they are.
        path, _ = resolve_weights(weights, variant)
        task = checkpoints.detect_task(checkpoints.to_official(checkpoints.read_checkpoint(path))[0])
    if task in (None, "classify"):
        return load_model(variant, weights, num_classes, seed=seed, quiet=quiet)
    model, v, info, _ = load_dense_model(variant, weights, task, seed=seed, num_classes=num_classes)
    if num_classes is not None and task != "features" and num_classes != info.num_classes:
        raise VanexportError(f"--num-classes {num_classes} but the checkpoint's head has {info.num_classes} classes",
                             f"drop --num-classes or pass --num-classes {info.num_classes}")
    return model, v, info


def load_dense_model(variant: str | Variant | None = None, weights: str | None = None, task: str | None = None,
                     seed: int = 0, num_classes: int | None = None):
    """Return (model in eval mode, variant, WeightsInfo, task) for a dense task.

    `task` None: the one the checkpoint holds (an error for a classifier: use factory.load_model). "features"
    takes the backbone of any checkpoint (classifier, Semantic FPN or UperNet). Without weights: the authors'
    sizes (`num_classes`: ADE20K's 150 by default) with random weights from `seed` (for testing the pipeline
    only)."""
    if weights is None:
        if task not in DENSE_TASKS:
            raise VanexportError("a dense model without --weights needs its task",
                                 f"pass --task with one of {', '.join(DENSE_TASKS)}, or a checkpoint")
        v = get_variant(variant or "b0") if not isinstance(variant, Variant) else variant
        model = create_dense_model(task, v, num_classes=num_classes or ADE20K_CLASSES)
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
                         "drop --task (the checkpoint says what it is) or pass --task features for its backbone")


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
