"""Our VAN against an implementation we did not write (transformers' VanForImageClassification, see
tests/independent_reference.py), and the parameter counts against the published tables, not our own."""
import pytest
import torch
from transformers.models.deprecated.van import VanConfig, VanForImageClassification

from independent_reference import fixed_batch, hf_twin, logits_both
from vanexport.model.factory import create_model, randomize
from vanexport.model.variants import VARIANTS

# Published parameter counts (millions, 1000-class head), at the precision each source prints them:
# b0-b3: the authors' README, Visual-Attention-Network/VAN-Classification (README.md, "VAN Models (IN-1K)" table,
#        commit 4a9776f): 4.1, 13.9, 26.6, 44.8.
# b4:    OpenMMLab's converted model table (mmclassification 0.x docs, papers/van.html, "VAN-B4*"): 60.28.
# b5/b6 are not in either table; their shapes are checked against transformers' model below.
PUBLISHED_PARAMS_M = {"b0": (4.1, 1), "b1": (13.9, 1), "b2": (26.6, 1), "b3": (44.8, 1), "b4": (60.28, 2)}


def our_parameter_count(name: str) -> int:
    return sum(p.numel() for p in create_model(name, device="meta").parameters())


@pytest.mark.parametrize("name", list(PUBLISHED_PARAMS_M))
def test_parameter_counts_match_the_published_tables(name):
    published, decimals = PUBLISHED_PARAMS_M[name]
    assert round(our_parameter_count(name) / 1e6, decimals) == published


@pytest.mark.parametrize("name", list(VARIANTS))
def test_parameter_counts_match_transformers_model(name):
    """Every variant, b5 and b6 included, has exactly the parameters of transformers' VAN of the same shape (less
    its final LayerNorm, which its forward never uses)."""
    v = VARIANTS[name]
    with torch.device("meta"):
        theirs = VanForImageClassification(VanConfig(hidden_sizes=list(v.embed_dims), depths=list(v.depths),
                                                     mlp_ratios=list(v.mlp_ratios), num_labels=1000))
    n = sum(p.numel() for k, p in theirs.named_parameters() if not k.startswith("van.layernorm."))
    assert our_parameter_count(name) == n


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("b4", "b5", "b6") else n
                                  for n in VARIANTS])  # b4-b6: 4 to 12 s each, mostly making the random weights
def test_logits_equal_transformers_for_every_variant(name):
    """The same random weights (vanexport's well-scaled init: every path matters, finite in every variant) through
    both implementations, at 64x64 (at 32x32 the last stage has one token: pooling could not be told apart)."""
    model = create_model(name)
    randomize(model, seed=3)
    ours, theirs = logits_both(model, fixed_batch(64))
    assert torch.isfinite(ours).all() and ours.abs().max() > 0.1  # a comparison of real numbers
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_other_head_sizes_and_layernorm_eps_agree(b0):
    """A 10-class head (the digits model) and mmpretrain's LayerNorm eps (1e-5) reach the twin too."""
    model = create_model("b0", num_classes=10)
    randomize(model, seed=5)
    model.set_layernorm_eps(1e-5)
    ours, theirs = logits_both(model, fixed_batch(64, batch=3))
    assert ours.shape == (3, 10)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_the_twin_tells_a_changed_model_apart(b0):
    """The comparison can fail: our b0 pooled with max instead of mean (the slip that once passed every fidelity
    test) is far from the twin, while the model itself is within 1e-5."""
    model, _ = b0
    x = fixed_batch(64)
    tokens = []
    hook = model.norm4.register_forward_hook(lambda module, args, out: tokens.append(out))  # NHWC, before pooling
    try:
        ours, theirs = logits_both(model, x)
    finally:
        hook.remove()
    with torch.no_grad():
        max_pooled = model.head(tokens[0].amax(dim=(1, 2)))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    assert (max_pooled - theirs).abs().max() > 1e-2
