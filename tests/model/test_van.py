import pytest
import torch

from vanexport.errors import VanexportError
from vanexport.model.factory import create_model, load_model
from vanexport.model.variants import VARIANTS, Preprocessing, check_img_size, get_variant, variant_from_shapes


@pytest.mark.parametrize("name", list(VARIANTS))
def test_parameter_counts_match_the_paper(name):
    v = VARIANTS[name]
    model = create_model(v, device="meta")  # b6 has 200M parameters: count them without allocating
    n = sum(p.numel() for p in model.parameters())
    assert round(n / 1e6, 2) == v.params_m


def test_b0_has_the_official_402_state_dict_entries_and_key_names():
    sd = create_model("b0", device="meta").state_dict()
    assert len(sd) == 402
    for key in ("patch_embed1.proj.weight", "block1.0.attn.spatial_gating_unit.conv_spatial.weight",
                "block4.1.mlp.dwconv.dwconv.bias", "block2.2.layer_scale_1", "norm4.weight", "head.bias",
                "patch_embed3.norm.num_batches_tracked"):
        assert key in sd


def test_lka_geometry():
    m = create_model("b0", device="meta")
    lka = m.block1[0].attn.spatial_gating_unit
    assert (lka.conv0.kernel_size, lka.conv0.padding, lka.conv0.groups) == ((5, 5), (2, 2), 32)
    assert (lka.conv_spatial.kernel_size, lka.conv_spatial.dilation, lka.conv_spatial.padding) == ((7, 7), (3, 3), (9, 9))
    assert m.patch_embed1.proj.stride == (4, 4) and m.patch_embed2.proj.kernel_size == (3, 3)
    assert m.norm1.eps == 1e-6


@pytest.mark.parametrize("size", [224, 160, 256])
def test_forward_shapes(b0, size):
    model, _ = b0
    with torch.no_grad():
        out = model(torch.zeros(2, 3, size, size))
    assert out.shape == (2, 1000)


def test_stage_layernorm_equals_the_reference_flatten_transpose_form(b0):
    """Our permute -> LN -> permute must equal the reference's flatten/transpose/LN/reshape round trip."""
    model, _ = b0
    x = torch.randn(1, 32, 56, 56)
    ln = model.norm1
    ours = ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    ref = ln(x.flatten(2).transpose(1, 2)).reshape(1, 56, 56, -1).permute(0, 3, 1, 2)
    assert torch.equal(ours, ref)


def test_random_weights_are_deterministic_and_batchnorm_stats_are_not_defaults(b0):
    _, sd = b0
    again, _, _ = load_model("b0", None, quiet=True)
    assert all(torch.equal(sd[k], v) for k, v in again.state_dict().items())
    mean, var = sd["block1.0.norm1.running_mean"], sd["block1.0.norm1.running_var"]
    assert mean.abs().min() > 0 and not torch.allclose(var, torch.ones_like(var))
    other, _, _ = load_model("b0", None, seed=1, quiet=True)
    assert not torch.equal(other.state_dict()["head.weight"], sd["head.weight"])


@pytest.mark.parametrize("name", list(VARIANTS))
def test_random_weights_give_finite_varied_outputs_in_every_variant(name):
    """Deep variants (b6: 90 blocks in stage 3) must not overflow through the gating multiply, nor collapse to
    one output whatever the image: finite logits that differ across classes and across the images of a batch."""
    model = create_model(name)
    from vanexport.model.factory import randomize

    randomize(model, 0)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    assert torch.isfinite(out).all() and 0.1 < out.abs().max() < 100
    assert out.std(dim=1).min() > 1e-2  # not constant over the classes
    assert out.std(dim=0).mean() > 1e-3  # the two images give different logits


@pytest.mark.slow
def test_random_weights_stay_finite_above_the_default_size_in_the_deepest_variant():
    """b6 (90 blocks in stage 3) gave NaN at 384x384 with statistics measured at 224 and layer scales as in b0."""
    model, _, _ = load_model("b6", None, quiet=True)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 384, 384, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    assert torch.isfinite(out).all() and 0.1 < out.abs().max() < 100


def test_random_weights_stay_finite_at_the_default_size():
    """b4 (40 blocks in stage 3) gave NaN at 224x224 when its BatchNorm statistics were measured at 64x64."""
    model, _, _ = load_model("b4", None, quiet=True)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    assert torch.isfinite(out).all() and 0.1 < out.abs().max() < 100


def test_random_weights_warn():
    with pytest.warns(UserWarning, match="random weights"):
        load_model("b0", None)


def test_variant_lookup_and_errors():
    assert get_variant("tiny").name == "b0" and get_variant("VAN_B2").name == "b2"
    with pytest.raises(VanexportError, match="unknown VAN variant 'b9'.*b0, b1"):
        get_variant("b9")
    assert variant_from_shapes((64, 128, 320, 512), (3, 3, 12, 3)).name == "b2"
    assert variant_from_shapes((1, 2, 3, 4), (1, 1, 1, 1)) is None


def test_preprocessing_is_van_not_imagenet():
    p = get_variant("b3").preprocessing
    assert p.mean == p.std == (0.5, 0.5, 0.5)
    assert (p.input_size, p.resize_size, p.interpolation) == (224, 248, "bicubic")
    assert Preprocessing().at_size(288).resize_size == 320
    assert Preprocessing.from_dict(p.to_dict()) == p


@pytest.mark.parametrize("size", [0, 100, 225, -32])
def test_image_size_must_be_a_multiple_of_32(size):
    with pytest.raises(VanexportError, match="multiple of 32"):
        check_img_size(size)
