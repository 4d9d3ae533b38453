"""Rebuild the exact PyTorch model an artifact was made from, using its metadata."""
from __future__ import annotations

import re
from pathlib import Path

from .errors import VanexportError


def reference_model(meta, weights: str | None = None):
    """The PyTorch model for `meta` (a ModelMetadata). Random weights are rebuilt from their seed;
    checkpoint weights come from `weights` or, if still there, the file recorded at export time."""
    from .model.checkpoints import is_url
    from .model.factory import load_model

    seed = re.fullmatch(r"random\(seed=(\d+)\)", meta.weights_source or "")
    if weights is None and seed:
        model, _, info = load_model(meta.variant, None, meta.num_classes, seed=int(seed.group(1)), quiet=True)
    else:
        source = weights or meta.weights_source
        if not source or not (is_url(source) or source == "official" or Path(source).exists()):
            raise VanexportError(f"the weights this model was exported from ({meta.weights_source}) are not here",
                                 "pass them with --weights PATH")
        model, _, info = load_model(meta.variant, source, meta.num_classes, quiet=True)
    if meta.weights_sha256 and info.sha256 != meta.weights_sha256:
        raise VanexportError(f"--weights {info.source} are not the weights this model was exported from "
                             f"(sha256 {info.sha256[:12]} vs {meta.weights_sha256[:12]})",
                             "pass the checkpoint used at export time")
    return model
