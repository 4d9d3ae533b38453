"""Build a VAN variant and fill it: from a checkpoint (any layout), or from a fixed seed."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from ..errors import VanexportError
from ..files import regular_file
from . import checkpoints
from .tasks import HEAD_NAMES
from .variants import Variant, get_variant, variant_from_shapes

DEFAULT_SEED = 0
OFFLINE_MODEL = "python -m vanexport.zoo.digits digits/"  # trains VAN-b0 on scikit-learn's digits, no download
SHALLOW_STAGE = 5  # blocks in a stage whose random layer scales are not scaled down (b0-b1 have at most 5)
STATISTICS_SIZE = 224  # input size the random weights' BatchNorm statistics are measured at (see randomize)


@dataclass
class WeightsInfo:
    source: str  # "random(seed=0)", a path, or a URL
    layout: str  # official / mmpretrain / huggingface / random
    sha256: str  # of the tensors (see checkpoints.weights_sha256)
    num_classes: int
    file: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def is_random(self) -> bool:
        return self.layout == "random"


def create_model(variant: str | Variant, num_classes: int = 1000, device: str | None = None):
    """An uninitialised-looking (PyTorch default init) VAN; `device="meta"` costs no memory."""
    import torch
    from .van import VAN

    v = variant if isinstance(variant, Variant) else get_variant(variant)
    with torch.device(device or "cpu"):
        return VAN(v.embed_dims, v.depths, v.mlp_ratios, num_classes=num_classes)


def randomize(model, seed: int = DEFAULT_SEED) -> None:
    """Deterministic random weights in which every path matters numerically, and that stay finite in every variant.

    Unlike a training init, BatchNorm affines and layer scales are random too: with the defaults (scale 1,
    layer scale 1e-2) a BatchNorm or branch mistake would hide below tolerance. BatchNorm running statistics are
    measured on a seeded random batch (as training would leave them, per channel, far from mean 0 / var 1): with
    made-up statistics the activations of deep variants grow through the `u * attn` gating until they overflow.
    They are measured at 224x224, the default size: measured at 64x64, where stage 3's dilated 7x7 sees mostly
    padding, they undercounted what larger inputs give, and b4 and b6 gave NaN at 224. Smaller inputs than the
    measured size give smaller activations, which only damps the gating; larger ones give somewhat larger ones, which
    the 90 gated blocks of b6's stage 3 amplified to NaN at 384 until the layer scales of deep stages were scaled by
    sqrt(SHALLOW_STAGE / depth). Seen finite: b0-b6 at 32x32, b3-b6 at 224 and 384, b6 at 512.
    """
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                m.weight.normal_(0, (2.0 / fan_out) ** 0.5, generator=g)
                if m.bias is not None:  # convs followed by BatchNorm (the dense heads') have none
                    m.bias.uniform_(-0.1, 0.1, generator=g)
            elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0, m.in_features ** -0.5, generator=g)
                m.bias.uniform_(-0.1, 0.1, generator=g)
        for name, p in model.named_parameters():
            if "layer_scale" in name:  # smaller in deep stages: the sum of their branches stays the same size
                depth = _stage_depth(model, name)
                p.uniform_(0.05, 0.3, generator=g).mul_(min(1.0, (SHALLOW_STAGE / depth) ** 0.5))
        _measure_batchnorm_statistics(model, torch.rand(2, 3, STATISTICS_SIZE, STATISTICS_SIZE, generator=g) * 2 - 1)
    model.eval()


def _stage_depth(model, parameter: str) -> int:
    """How many blocks the stage of a block's parameter has: `block2.3.layer_scale_1` (a classifier) or
    `backbone.block2.3.layer_scale_1` (a dense model) lies in block2, a list of blocks."""
    parts = parameter.split(".")
    index = next(i for i, part in enumerate(parts) if part.isdigit())
    return len(model.get_submodule(".".join(parts[:index])))


def _measure_batchnorm_statistics(model, batch) -> None:
    """Set every BatchNorm's running mean/var to the statistics of `batch` (one pass, cumulative average)."""
    from torch import nn

    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: after one batch, exactly its statistics
    model.train()
    model(batch)
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    model.eval()


def random_weights_warning(variant: str, seed: int) -> str:
    return (f"no --weights given: VAN-{variant} has random weights (seed {seed}); "
            "its outputs are meaningless, use it only to test the pipeline")


def load_model(variant: str | Variant | None = None, weights: str | None = None, num_classes: int | None = None,
               seed: int = DEFAULT_SEED, quiet: bool = False):
    """Return (model in eval mode, variant, WeightsInfo).

    `weights`: None (random from `seed`, with a warning), "official", a URL, or a checkpoint path.
    `variant` may be None when weights are given: it is then guessed from the tensor shapes.
    """
    if weights is None:
        v = get_variant(variant or "b0")
        model = create_model(v, num_classes or 1000)
        randomize(model, seed)
        if not quiet:
            warnings.warn(random_weights_warning(v.name, seed), stacklevel=2)
        sd_hash = checkpoints.weights_sha256(model.state_dict())
        return model, v, WeightsInfo(f"random(seed={seed})", "random", sd_hash, num_classes or 1000)

    path, source = resolve_weights(weights, variant)
    sd, layout = checkpoints.to_official(checkpoints.read_checkpoint(path))
    task = checkpoints.detect_task(sd)
    if task.startswith("segment-"):
        raise VanexportError(f"'{path}' holds {HEAD_NAMES[task]} (a segmentation model), not a classifier",
                             "`vanexport onnx` exports it; the other steps handle classifiers only so far "
                             "(docs/segmentation.md)")
    arch = checkpoints.infer_architecture(sd)
    guessed = variant_from_shapes(arch.embed_dims, arch.depths)
    if variant is None:
        if guessed is None:
            raise VanexportError(f"'{path}' does not look like any VAN variant "
                                 f"(embed dims {arch.embed_dims}, depths {arch.depths})",
                                 "pass --variant and check the file is a VAN checkpoint")
        v = guessed
    else:
        v = get_variant(variant) if not isinstance(variant, Variant) else variant
    if num_classes is not None and arch.num_classes is not None and num_classes != arch.num_classes:
        raise VanexportError(f"--num-classes {num_classes} but the checkpoint's head has {arch.num_classes} classes",
                             f"drop --num-classes or pass --num-classes {arch.num_classes}")
    n = num_classes or arch.num_classes or 1000
    model = create_model(v, n)
    model.set_layernorm_eps(checkpoints.layernorm_eps(layout))  # mmpretrain's is 1e-5 (official: 1e-6)
    _load_strict(model, sd, v, guessed, path)
    model.eval()
    info = WeightsInfo(source, layout, checkpoints.weights_sha256(model.state_dict()), n, file=str(path))
    return model, v, info


def resolve_weights(weights: str, variant) -> tuple[str, str]:
    """(local file, source to record) for `weights`: 'official', a URL or a path, each optionally pinned with
    '#sha256=HEX'. A pinned local file is checked before it is read."""
    from . import download

    spec, pin = download.split_pin(weights)
    if spec == "official":
        v = get_variant(variant or "b0") if not isinstance(variant, Variant) else variant
        if not v.checkpoint_url:
            raise VanexportError(f"no official checkpoint URL is known for VAN-{v.name}",
                                 "download its weights yourself and pass --weights PATH")
        try:
            return str(download.download(v.checkpoint_url, pin or v.checkpoint_sha256)), v.checkpoint_url
        except VanexportError as e:  # no network, a proxy, a changed file: the whole journey still runs offline
            raise VanexportError(e.problem, f"{e.hint}; or follow the journey offline on a VAN trained here: "
                                 f"{OFFLINE_MODEL} (README.md, 'Offline')") from e
    if download.is_url(spec):
        return str(download.download(spec, pin)), spec
    if pin:
        download.check_pin(regular_file(spec, "weights file", "pass an existing checkpoint file"), pin,
                           f"weights file '{spec}'")
    return spec, spec


def state_dict_mismatch(model, sd: dict) -> str | None:
    """How `sd` fails to fit `model` exactly (missing, unexpected, wrong-shape keys), or None when it fits.
    Fills in BatchNorm's step counter where old checkpoints lack it (it has no effect in eval)."""
    expected = model.state_dict()
    for k in expected:
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = expected[k]
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(expected[k].shape)}"
             for k in expected if k in sd and sd[k].shape != expected[k].shape]
    parts = [f"{label} {len(keys)} ({_few(keys)})" for label, keys in
             (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
    return "; ".join(parts) or None


def _load_strict(model, sd: dict, v: Variant, guessed: Variant | None, path) -> None:
    mismatch = state_dict_mismatch(model, sd)
    if mismatch:
        if guessed is not None and guessed.name != v.name:
            hint = f"the shapes fit VAN-{guessed.name}: pass --variant {guessed.name}"
        elif guessed is None:
            hint = "the file does not match any VAN variant; check it is a VAN checkpoint"
        else:
            hint = "the checkpoint is incomplete or from a modified model"
        raise VanexportError(f"'{path}' does not fit VAN-{v.name}: {mismatch}", hint)
    model.load_state_dict(sd, strict=True)


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f", ... {len(keys) - n} more" if len(keys) > n else "")
