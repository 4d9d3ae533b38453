"""Rebuild the exact PyTorch model an artifact was made from, using its metadata; remember the last few.

Checking a chain (FP32 ONNX, its FP16 and INT8 conversions, a plan) needs the same reference several times: it is
loaded once and kept (the two most recent models; a b6 is 800 MB). Weights are identified by the sha256 of their
tensors, so a changed file on disk is never mistaken for the remembered one.
"""
from __future__ import annotations

import collections
import re
from pathlib import Path

from ..errors import VanexportError

_KEEP = 2
_models: collections.OrderedDict = collections.OrderedDict()  # (variant, num_classes, weights sha256) -> model


def remember(model, variant: str, num_classes: int, weights_sha256: str) -> None:
    """Offer an already loaded model to later reference_model() calls for the same weights."""
    key = (variant, int(num_classes), weights_sha256)
    _models[key] = model
    _models.move_to_end(key)
    while len(_models) > _KEEP:
        _models.popitem(last=False)


def forget() -> None:
    _models.clear()


def reference_model(meta, weights: str | None = None):
    """The PyTorch model for `meta` (a ModelMetadata). Random weights are rebuilt from their seed;
    checkpoint weights come from `weights` or, if still there, the file recorded at export time."""
    from .download import is_url, split_pin
    from .factory import load_model

    key = (meta.variant, int(meta.num_classes), meta.weights_sha256)
    seed = re.fullmatch(r"random\(seed=(\d+)\)", meta.weights_source or "")
    if weights is None and key in _models and meta.weights_sha256:
        return _models[key]
    if weights is None and seed:
        model, _, info = load_model(meta.variant, None, meta.num_classes, seed=int(seed.group(1)), quiet=True)
    else:
        source = weights or meta.weights_source
        spec = split_pin(source)[0] if source else source
        if not spec or not (is_url(spec) or spec == "official" or Path(spec).exists()):
            raise VanexportError(f"the weights this model was exported from ({meta.weights_source}) are not here",
                                 "pass them with --weights PATH")
        model, _, info = load_model(meta.variant, source, meta.num_classes, quiet=True)
    if meta.weights_sha256 and info.sha256 != meta.weights_sha256:
        raise VanexportError(f"--weights {info.source} are not the weights this model was exported from "
                             f"(sha256 {info.sha256[:12]} vs {meta.weights_sha256[:12]})",
                             "pass the checkpoint used at export time")
    remember(model, meta.variant, meta.num_classes, info.sha256)
    return model


def check_finite(logits, weights: str, what_to_do: str) -> None:
    """Refuse a PyTorch reference that gives NaN or infinite logits: every comparison with it would blame the
    exported file (a "mismatch", an onnxsim or opset hint) for what the weights themselves do."""
    import numpy as np

    bad = ~np.isfinite(np.asarray(logits)).all(axis=tuple(range(1, np.ndim(logits))))
    if bad.any():
        kind = "NaN" if np.isnan(logits).any() else "infinite"
        raise VanexportError(f"PyTorch itself gives {kind} logits ({int(bad.sum())} of {len(bad)} inputs tried): "
                             f"the weights ({weights}) overflow in float32 or are broken, so nothing can be checked "
                             "against them", what_to_do)
