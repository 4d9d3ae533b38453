"""Reading VAN checkpoints in every layout people have, safely (weights_only=True), into the official key names.

Layouts: official (`.pth.tar`, weights under `state_dict`), weights under `model` or at the top level,
`module.` prefixes (DataParallel), mmpretrain (`backbone.blocks1...`), Hugging Face transformers
(`van.encoder.stages...`), and the segmentation checkpoints of the authors' VAN-Segmentation (mmseg 0.x:
`backbone.block1...`, `neck.`, `decode_head.`, `auxiliary_head.`) and of mmsegmentation 1.x's projects/van.
Every layout is renamed to the official backbone names; a dense model's `neck.` and `decode_head.` keys are kept.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
from dataclasses import dataclass

from ..errors import VanexportError
from ..files import regular_file

_WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema", "module")


def read_checkpoint(path: str | os.PathLike) -> dict:
    """torch.load with weights_only=True, turning every failure into a one-line VanexportError."""
    import torch

    path = regular_file(path, "weights file", "pass an existing checkpoint file, a URL, or --weights official")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        blocked = re.search(r"GLOBAL ([\w.]+)", str(e))  # the weights-only unpickler refused a Python object
        if blocked:
            raise VanexportError(
                f"'{path}' needs arbitrary code execution to load (it pickles {blocked.group(1)}, not just tensors)",
                "re-save it as a plain state dict: torch.save(model.state_dict(), 'weights.pth') "
                "in the environment that made it; vanexport never loads with weights_only=False") from e
        raise VanexportError(f"'{path}' is truncated or not a PyTorch checkpoint (unreadable pickle)",
                             "download it again or pass a file saved by torch.save") from e
    except Exception as e:  # torch.load of a damaged file raises RuntimeError, EOFError, KeyError, ...
        raise VanexportError(f"'{path}' is truncated or not a PyTorch checkpoint ({_first_line(e)})",
                             "download it again or pass another file") from e
    return extract_state_dict(obj, source=str(path))


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


def extract_state_dict(obj, source: str = "checkpoint") -> dict:
    """Find the tensors: under a wrapper key, or at the top level; strip `module.` prefixes."""
    import torch

    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict) and any(isinstance(v, torch.Tensor) for v in obj[key].values()):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise VanexportError(f"'{source}' holds no state dict of tensors",
                             "pass a checkpoint saved with torch.save(model.state_dict(), ...)")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if all(k.startswith("module.") for k in sd):
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    return sd


# ---- layouts -> official key names ---------------------------------------------------------------

def _stage(m: re.Match, group: int = 1) -> int:
    return int(m.group(group)) + 1


_HF_INNER = [
    ("pre_normomalization.", "norm1."),  # sic: Hugging Face's spelling
    ("post_normalization.", "norm2."),
    ("attention.pre_projection.conv.", "attn.proj_1."),
    ("attention.post_projection.", "attn.proj_2."),
    ("attention.attention_layer.attention.depth_wise_dilated.", "attn.spatial_gating_unit.conv_spatial."),
    ("attention.attention_layer.attention.depth_wise.", "attn.spatial_gating_unit.conv0."),
    ("attention.attention_layer.attention.point_wise.", "attn.spatial_gating_unit.conv1."),
    ("mlp.in_dense.", "mlp.fc1."),
    ("mlp.depth_wise.", "mlp.dwconv.dwconv."),
    ("mlp.out_dense.", "mlp.fc2."),
    ("attention_scaling.weight", "layer_scale_1"),
    ("mlp_scaling.weight", "layer_scale_2"),
]


def _from_hf(key: str) -> str | None:
    if key.startswith("van.layernorm."):
        return None  # exists in HF checkpoints but is never used by the model
    if key.startswith("classifier."):
        return "head." + key.removeprefix("classifier.")
    if m := re.match(r"van\.encoder\.stages\.(\d+)\.embeddings\.convolution\.(.*)", key):
        return f"patch_embed{_stage(m)}.proj.{m.group(2)}"
    if m := re.match(r"van\.encoder\.stages\.(\d+)\.embeddings\.normalization\.(.*)", key):
        return f"patch_embed{_stage(m)}.norm.{m.group(2)}"
    if m := re.match(r"van\.encoder\.stages\.(\d+)\.normalization\.(.*)", key):
        return f"norm{_stage(m)}.{m.group(2)}"
    if m := re.match(r"van\.encoder\.stages\.(\d+)\.layers\.(\d+)\.(.*)", key):
        rest = m.group(3)
        for old, new in _HF_INNER:
            if rest.startswith(old):
                rest = new + rest[len(old):]
                break
        return f"block{_stage(m)}.{m.group(2)}.{rest}"
    return key


def _from_mmpretrain(key: str) -> str | None:
    if key.startswith("head.fc."):
        return "head." + key.removeprefix("head.fc.")
    if key.startswith("data_preprocessor."):
        return None
    key = key.removeprefix("backbone.")
    key = re.sub(r"^patch_embed(\d+)\.projection\.", r"patch_embed\1.proj.", key)
    key = re.sub(r"^blocks(\d+)\.", r"block\1.", key)
    key = key.replace(".spatial_gating_unit.DW_conv.", ".spatial_gating_unit.conv0.")
    key = key.replace(".spatial_gating_unit.DW_D_conv.", ".spatial_gating_unit.conv_spatial.")
    key = re.sub(r"\.mlp\.dwconv\.(weight|bias)$", r".mlp.dwconv.dwconv.\1", key)
    return key


# Read in Visual-Attention-Network/VAN-Segmentation at 8285fc7 (van.py, configs/_base_/models/{fpn,upernet}_van.py):
# the backbone keeps the official names under `backbone.`; the FCN auxiliary head only adds a training loss.
def _from_mmseg(key: str) -> str | None:
    if key.startswith(("auxiliary_head.", "data_preprocessor.")):
        return None
    return key.removeprefix("backbone.")


# mmsegmentation 1.x projects/van/backbones/van.py builds VAN's blocks from MSCAN's (mmseg/models/backbones/mscan.py),
# whose MLP holds its depthwise conv directly: `mlp.dwconv.weight` for the official `mlp.dwconv.dwconv.weight`.
def _from_mmseg1(key: str) -> str | None:
    key = _from_mmseg(key)
    return None if key is None else re.sub(r"^(block\d+\.\d+\.mlp\.dwconv)\.(weight|bias)$", r"\1.dwconv.\2", key)


LAYOUTS = {"official": lambda k: k, "mmpretrain": _from_mmpretrain, "huggingface": _from_hf,
           "mmseg": _from_mmseg, "mmseg1": _from_mmseg1}
# The stage LayerNorm's eps each layout was trained with: the official classifier's 1e-6, or nn.LayerNorm's
# default 1e-5 (mmpretrain; both mmseg backbones build `nn.LayerNorm(embed_dims[i])`).
_LAYERNORM_EPS = {"mmpretrain": 1e-5, "mmseg": 1e-5, "mmseg1": 1e-5}
_DENSE_PREFIXES = ("neck.", "decode_head.", "auxiliary_head.")


def layernorm_eps(layout: str) -> float:
    return _LAYERNORM_EPS.get(layout, 1e-6)


def detect_layout(sd: dict) -> str:
    keys = list(sd)
    if any(k.startswith("van.encoder.") for k in keys):
        return "huggingface"
    if any(re.match(r"backbone\.block\d+\.", k) or k.startswith(_DENSE_PREFIXES) for k in keys):
        if any(re.match(r"backbone\.block\d+\.\d+\.mlp\.dwconv\.weight$", k) for k in keys):
            return "mmseg1"
        return "mmseg"
    if any(k.startswith("backbone.") for k in keys):
        return "mmpretrain"
    return "official"


def detect_task(sd: dict) -> str:
    """What an official-named state dict (see to_official) holds, one of model.tasks.TASKS: a classifier, Semantic
    FPN, UperNet, or only the backbone (features)."""
    keys = list(sd)
    if any(k.startswith("decode_head.psp_modules.") for k in keys):
        return "segment-upernet"
    if any(k.startswith("decode_head.scale_heads.") for k in keys) and any(k.startswith("neck.") for k in keys):
        return "segment-fpn"
    dense = sorted({k.split(".")[0] + "." + k.split(".")[1] for k in keys if k.startswith(("neck.", "decode_head."))})
    if dense:
        raise VanexportError(f"the checkpoint's decode head is not one vanexport knows ({', '.join(dense[:4])})",
                             "vanexport reads VAN with Semantic FPN (FPN neck + FPNHead) or UperNet (UPerHead)")
    if "head.weight" in sd:
        return "classify"
    return "features"


def to_official(sd: dict) -> tuple[dict, str]:
    """Rename a state dict of any known layout to the official key names."""
    layout = detect_layout(sd)
    rename = LAYOUTS[layout]
    out = {}
    for k, v in sd.items():
        new = rename(k)
        if new is not None:
            out[new] = v
    return out, layout


# ---- what architecture does a state dict describe? ------------------------------------------------

@dataclass(frozen=True)
class Architecture:
    embed_dims: tuple[int, ...]
    depths: tuple[int, ...]
    num_classes: int | None


def infer_architecture(sd: dict) -> Architecture:
    """Read embed dims, depths and head size from official-layout tensor shapes."""
    dims, depths = [], []
    for s in range(1, 5):
        w = sd.get(f"patch_embed{s}.proj.weight")
        if w is None:
            break
        dims.append(int(w.shape[0]))
        blocks = {int(m.group(1)) for k in sd if (m := re.match(rf"block{s}\.(\d+)\.", k))}
        depths.append(max(blocks) + 1 if blocks else 0)
    head = sd.get("head.weight")
    return Architecture(tuple(dims), tuple(depths), int(head.shape[0]) if head is not None else None)


def weights_sha256(sd: dict) -> str:
    """A hash of the weights themselves (names, dtypes, shapes, values), whatever file layout they came in."""
    import torch

    h = hashlib.sha256()
    for k in sorted(sd):
        t = sd[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # raw bytes, any dtype (bf16 too)
    return h.hexdigest()


def read_class_names(path: str | os.PathLike) -> list[str] | None:
    """Class names a checkpoint carries, if any: mmpretrain's `meta.dataset_meta.classes`, older mmcls
    `meta.CLASSES`, or a top-level `classes` / `class_names` list. Loaded with weights_only=True."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # read_checkpoint already reports unreadable files; names are optional
        return None
    if not isinstance(obj, dict):
        return None
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    dataset_meta = meta.get("dataset_meta") if isinstance(meta.get("dataset_meta"), dict) else {}
    for names in (dataset_meta.get("classes"), meta.get("CLASSES"), obj.get("classes"), obj.get("class_names")):
        if isinstance(names, (list, tuple)) and names and all(isinstance(n, str) for n in names):
            return [str(n) for n in names]
    return None
