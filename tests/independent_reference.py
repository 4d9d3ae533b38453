"""VAN in an implementation we did not write: Hugging Face transformers' `VanForImageClassification` (transformers
4.57, the last release that ships it, under models/deprecated/van; the dev extra pins it).

Our weights reach it through the Hugging Face key map vanexport reads checkpoints with
(`vanexport.model.checkpoints.LAYOUTS["huggingface"]`), so a slip in that map shows here too.
"""
from __future__ import annotations

import torch

FIXED_BATCH_SEED = 1234


def hf_twin(model):
    """A transformers VAN holding exactly `model`'s weights (a vanexport VAN), in eval mode."""
    from transformers.models.deprecated.van import VanConfig, VanForImageClassification

    from vanexport.model.checkpoints import LAYOUTS

    config = VanConfig(hidden_sizes=list(model.embed_dims), depths=list(model.depths),
                       mlp_ratios=[blk[0].mlp.fc1.out_channels // d for blk, d in
                                   zip((getattr(model, f"block{i + 1}") for i in range(model.num_stages)),
                                       model.embed_dims)],
                       num_labels=model.num_classes, layer_norm_eps=model.norm1.eps)
    with torch.device("meta"):  # no init of its own (b6: seconds): every tensor comes from `model`
        twin = VanForImageClassification(config)
    ours, theirs, used = model.state_dict(), {}, set()
    rename = LAYOUTS["huggingface"]
    for key, meta in twin.state_dict().items():
        name = rename(key)
        if name is None:  # van.layernorm: in transformers' model, never used in its forward
            theirs[key] = torch.zeros(meta.shape, dtype=meta.dtype)
            continue
        theirs[key] = ours[name]
        used.add(name)
    unmapped = set(ours) - used
    assert not unmapped, f"weights with no place in the transformers model: {sorted(unmapped)[:5]}"
    twin.load_state_dict(theirs, strict=True, assign=True)
    return twin.eval()


def fixed_batch(img_size: int = 32, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(FIXED_BATCH_SEED)
    return torch.rand(batch, 3, img_size, img_size, generator=g) * 2 - 1


@torch.no_grad()
def logits_both(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ours, transformers') logits of `model` on `x`."""
    was_training = model.training
    model.eval()
    try:
        return model(x), hf_twin(model)(pixel_values=x).logits
    finally:
        model.train(was_training)


def max_logit_gap(model, img_size: int = 32) -> float:
    ours, theirs = logits_both(model, fixed_batch(img_size))
    return float((ours - theirs).abs().max())


def assert_matches(model, img_size: int = 64, atol: float = 1e-5) -> None:
    """`model` (a vanexport VAN) gives transformers' logits on a fixed batch (64x64: the last stage has 2x2 tokens)."""
    ours, theirs = logits_both(model, fixed_batch(img_size))
    # weights that overflow give NaN in both implementations, at the same places: that agrees too
    assert bool((ours.isnan() == theirs.isnan()).all()), "NaN in one implementation's logits and not the other's"
    ours, theirs = ours.nan_to_num(0.0), theirs.nan_to_num(0.0)
    gap = float((ours - theirs).abs().max())
    assert gap <= atol, (f"the PyTorch reference differs from transformers' VAN with the same weights by {gap:.2e} "
                         f"(> {atol:.0e}) on a fixed batch: the reference itself is wrong")
