"""Every checkpoint layout, made from our own model's state dict by the key maps documented in VAN_FACTS.md.

The maps below are written out independently of vanexport's loader (official -> layout here,
layout -> official there), so a mistake in either shows up as a failed round trip.
"""
import re

import pytest
import torch

from vanexport.errors import VanexportError
from vanexport.model import checkpoints
from vanexport.model.factory import load_model


def to_mmpretrain(key):
    if key.startswith("head."):
        return "head.fc." + key[len("head."):]
    key = re.sub(r"^patch_embed(\d)\.proj\.", r"patch_embed\1.projection.", key)
    key = re.sub(r"^block(\d)\.", r"blocks\1.", key)
    key = key.replace("spatial_gating_unit.conv0.", "spatial_gating_unit.DW_conv.")
    key = key.replace("spatial_gating_unit.conv_spatial.", "spatial_gating_unit.DW_D_conv.")
    key = key.replace("mlp.dwconv.dwconv.", "mlp.dwconv.")
    return "backbone." + key


HF_BLOCK = {"norm1.": "pre_normomalization.", "norm2.": "post_normalization.",
            "attn.proj_1.": "attention.pre_projection.conv.", "attn.proj_2.": "attention.post_projection.",
            "attn.spatial_gating_unit.conv0.": "attention.attention_layer.attention.depth_wise.",
            "attn.spatial_gating_unit.conv_spatial.": "attention.attention_layer.attention.depth_wise_dilated.",
            "attn.spatial_gating_unit.conv1.": "attention.attention_layer.attention.point_wise.",
            "mlp.fc1.": "mlp.in_dense.", "mlp.dwconv.dwconv.": "mlp.depth_wise.", "mlp.fc2.": "mlp.out_dense.",
            "layer_scale_1": "attention_scaling.weight", "layer_scale_2": "mlp_scaling.weight"}


def to_hf(key):
    if key.startswith("head."):
        return "classifier." + key[len("head."):]
    if m := re.match(r"patch_embed(\d)\.(proj|norm)\.(.*)", key):
        part = {"proj": "convolution", "norm": "normalization"}[m.group(2)]
        return f"van.encoder.stages.{int(m.group(1)) - 1}.embeddings.{part}.{m.group(3)}"
    if m := re.match(r"norm(\d)\.(.*)", key):
        return f"van.encoder.stages.{int(m.group(1)) - 1}.normalization.{m.group(2)}"
    m = re.match(r"block(\d)\.(\d+)\.(.*)", key)
    rest = m.group(3)
    for ours, theirs in HF_BLOCK.items():
        if rest.startswith(ours):
            rest = theirs + rest[len(ours):]
            break
    return f"van.encoder.stages.{int(m.group(1)) - 1}.layers.{m.group(2)}.{rest}"


def _save(tmp_path, obj, name="ckpt.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def test_documented_key_names_spot_check():
    assert to_mmpretrain("block1.0.attn.spatial_gating_unit.conv0.weight") == \
        "backbone.blocks1.0.attn.spatial_gating_unit.DW_conv.weight"
    assert to_hf("block1.0.norm1.weight") == "van.encoder.stages.0.layers.0.pre_normomalization.weight"
    assert checkpoints._from_hf("van.encoder.stages.3.layers.1.mlp_scaling.weight") == "block4.1.layer_scale_2"
    assert checkpoints._from_mmpretrain("backbone.patch_embed2.projection.bias") == "patch_embed2.proj.bias"


@pytest.mark.parametrize("layout", ["official", "model", "toplevel", "module", "mmpretrain", "huggingface"])
def test_every_layout_loads_to_identical_weights(b0, tmp_path, layout):
    model, sd = b0
    if layout == "official":
        obj = {"state_dict": sd, "epoch": 300, "arch": "van_b0"}
    elif layout == "model":
        obj = {"model": sd, "optimizer": {"lr": torch.tensor(0.1)}}
    elif layout == "toplevel":
        obj = sd
    elif layout == "module":
        obj = {"state_dict": {"module." + k: v for k, v in sd.items()}}
    elif layout == "mmpretrain":
        obj = {"meta": {"epoch": 1}, "state_dict": {to_mmpretrain(k): v for k, v in sd.items()}}
    else:
        obj = {to_hf(k): v for k, v in sd.items()}
        obj["van.layernorm.weight"] = torch.ones(256)  # unused by the model; must be ignored
        obj["van.layernorm.bias"] = torch.zeros(256)
    path = _save(tmp_path, obj, "van_tiny_754.pth.tar")
    loaded, variant, info = load_model(None, path)  # variant guessed from the shapes
    assert variant.name == "b0"
    assert info.layout == {"mmpretrain": "mmpretrain", "huggingface": "huggingface"}.get(layout, "official")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        if layout == "mmpretrain":  # mmpretrain evaluates the stage LayerNorm with eps 1e-5
            assert loaded.norm1.eps == 1e-5
            loaded.set_layernorm_eps(1e-6)
        assert torch.equal(loaded(x), model(x))
    assert info.sha256 == checkpoints.weights_sha256(sd)


def test_missing_num_batches_tracked_is_tolerated(b0, tmp_path):
    _, sd = b0
    old = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    loaded, _, _ = load_model("b0", _save(tmp_path, old))
    assert torch.equal(loaded.state_dict()["head.weight"], sd["head.weight"])


def test_strict_load_names_the_problem_and_suggests_the_variant(b0, tmp_path):
    _, sd = b0
    with pytest.raises(VanexportError) as e:
        load_model("b2", _save(tmp_path, sd))
    msg = str(e.value)
    assert "does not fit VAN-b2" in msg and "wrong shape" in msg and "missing" in msg
    assert "pass --variant b0" in msg and "\n" not in msg
    broken = dict(sd)
    broken.pop("block2.1.mlp.fc1.weight")
    broken["block9.0.extra"] = torch.zeros(1)
    with pytest.raises(VanexportError, match=r"missing 1 \(block2.1.mlp.fc1.weight\); unexpected 1 \(block9.0.extra\)"):
        load_model("b0", _save(tmp_path, broken))


def test_head_size_is_detected_and_checked(b0, tmp_path):
    _, sd = b0
    ten = dict(sd, **{"head.weight": torch.randn(10, 256), "head.bias": torch.randn(10)})
    path = _save(tmp_path, ten)
    model, _, info = load_model("b0", path)
    assert info.num_classes == 10 and model.head.out_features == 10
    model, _, _ = load_model("b0", path, num_classes=10)
    with pytest.raises(VanexportError, match="--num-classes 5 but the checkpoint's head has 10"):
        load_model("b0", path, num_classes=5)


class Evil:
    def __reduce__(self):
        return (print, ("this would run code",))


def test_pickle_needing_code_execution_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": Evil()}, path)
    with pytest.raises(VanexportError, match="arbitrary code execution.*never loads with weights_only=False"):
        load_model("b0", str(path))


def test_truncated_and_foreign_files(b0, tmp_path):
    _, sd = b0
    good = _save(tmp_path, {"state_dict": sd})
    data = open(good, "rb").read()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(VanexportError, match="truncated or not a PyTorch checkpoint"):
        load_model("b0", str(tmp_path / "cut.pth"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(VanexportError, match="not a PyTorch checkpoint|truncated"):
        load_model("b0", str(tmp_path / "notes.txt"))
    with pytest.raises(VanexportError, match="holds no state dict"):
        load_model("b0", _save(tmp_path, {"epoch": 3}, "meta_only.pth"))
    with pytest.raises(VanexportError, match="not found"):
        load_model("b0", str(tmp_path / "missing.pth"))
    with pytest.raises(VanexportError, match="does not look like any VAN variant"):
        load_model(None, _save(tmp_path, {"patch_embed1.proj.weight": torch.zeros(8, 3, 7, 7)}, "odd.pth"))


def test_weights_official_uses_the_registry_url(b0, tmp_path, monkeypatch):
    import dataclasses

    from vanexport.model import variants

    _, sd = b0
    src = _save(tmp_path, {"state_dict": sd}, "van_tiny_754.pth.tar")
    patched = dataclasses.replace(variants.VARIANTS["b0"], checkpoint_url="file://" + src)
    monkeypatch.setitem(variants.VARIANTS, "b0", patched)
    model, v, info = load_model("b0", "official")
    assert info.source == "file://" + src and info.sha256 == checkpoints.weights_sha256(sd)
    with pytest.raises(VanexportError, match="no official checkpoint URL is known for VAN-b5"):
        load_model("b5", "official")


def test_official_urls_are_the_authors_files():
    from vanexport.model.variants import VARIANTS

    assert VARIANTS["b0"].checkpoint_url.endswith("/Visual-Attention-Network/VAN-Tiny-original/resolve/main/van_tiny_754.pth.tar")
    assert VARIANTS["b3"].checkpoint_url.endswith("van_large_839.pth.tar")
    assert VARIANTS["b4"].checkpoint_url.endswith("-f4665b92.pth") and VARIANTS["b4"].checkpoint_sha256 == "f4665b92"
