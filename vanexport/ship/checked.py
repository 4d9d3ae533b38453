"""What `vanexport triton` and `vanexport deepstream` take from a bundle, each value checked against what its field
may hold (the rule in vanexport.formats.fields) before anything is written: a bundle is untrusted input, and what
these commands write (configs, a Python model, file and folder names) is code and paths on a server.

The writers use only these checked values, and encode them for their destination on top (protobuf's text format
for Triton, the key-file encoder for DeepStream), so each is safe on its own whatever the bundle reader let through.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import VanexportError
from ..formats.fields import one_line, preprocessing, tensor_name, variant_name, whole_number

REFUSED = "nothing was written; get the bundle again from its source (it is damaged or was made to attack)"
_MAX_DIM = 1 << 20


@dataclass(frozen=True)
class BundleFacts:
    """The strings and numbers a writer may use, all checked."""

    variant: str
    input_name: str
    output_name: str
    input_shape: list  # ints, or None for a dynamic axis
    labels: list[str]
    pre: object  # vanexport.model.variants.Preprocessing, its values checked


def bundle_file_name(path: str | os.PathLike) -> str:
    """The bundle's own file name, which the configs name in a comment: one line of printable text."""
    try:
        return one_line(Path(path).name, "the bundle's file name")
    except ValueError as e:
        raise VanexportError(str(e), "rename the file (its name is written into the configs)") from None


def bundle_facts(bundle) -> BundleFacts:
    """The checked facts of an opened bundle (vanexport.device.bundle.Bundle), or a one-line VanexportError."""
    m = bundle.manifest
    try:
        return BundleFacts(
            variant=variant_name(bundle.variant, "model.variant"),
            input_name=tensor_name(m.io_input.name, "io.input.name"),
            output_name=tensor_name(m.io_output.name, "io.output.name"),
            input_shape=[_dim(d) for d in m.io_input.shape],
            labels=[one_line(label, f"label {i + 1}") for i, label in enumerate(_labels(bundle))],
            pre=checked_preprocessing(_preprocessing(bundle)))
    except ValueError as e:  # UnicodeDecodeError (labels) is a ValueError
        raise VanexportError(f"refusing the bundle: {_first_line(e)}", REFUSED) from None


def checked_preprocessing(pre):
    """`pre` when every value is one vanexport's preprocessing can take (formats.fields.preprocessing); ValueError
    otherwise."""
    preprocessing({"input_size": pre.input_size, "crop_pct": pre.crop_pct, "resize_size": pre.resize_size,
                   "interpolation": pre.interpolation, "mean": list(pre.mean), "std": list(pre.std)})
    return pre


def _labels(bundle) -> list[str]:
    """The label file as it is, one label per line ended by '\\n': a '\\r' stays inside its label (to be refused),
    where a text-mode read would split the label in two and shift every label after it."""
    path = bundle.file(bundle.manifest.labels.file)
    labels = path.read_bytes().decode("utf-8").rstrip("\n").split("\n")
    if len(labels) != bundle.num_classes:
        raise ValueError(f"the label file has {len(labels)} lines for {bundle.num_classes} classes")
    return labels


def _preprocessing(bundle):
    try:
        return bundle.preprocessing
    except KeyError as e:
        raise ValueError(f"preprocessing has no {e}") from None
    except TypeError as e:
        raise ValueError(f"preprocessing is malformed ({_first_line(e)})") from None


def _dim(d):
    """An axis of the input's shape: a size, or a dynamic axis (its name is never written anywhere)."""
    if isinstance(d, str):
        return None
    return whole_number(d, "an axis of io.input.shape", 1, _MAX_DIM)


def _first_line(e: BaseException) -> str:
    text = str(e).splitlines()
    return text[0] if text else type(e).__name__
