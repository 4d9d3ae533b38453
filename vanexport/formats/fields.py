"""What a string from outside (a bundle's manifest, an ONNX file's metadata, a file name, a flag) may hold before any
of it goes into a config, a script, a path or a terminal. The one rule, in one place: the record parsers call these
checks, and every writer for a destination (Triton's pbtxt, DeepStream's key files, a path) relies on them and
encodes for its destination on top.

Each check returns the value it was given when it is fine and raises ValueError saying what is wrong otherwise.
"""
from __future__ import annotations

import re

from ..model.variants import VARIANTS

# A tensor name: what our exporter writes ("input", "logits") and what other exporters commonly do ("input.1",
# "onnx::Gemm_0", "pixel_values"); nothing that could end a line, a quoted string, a list or a key-file group.
_TENSOR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]{0,127}")
# One part of a path (a model folder, a file name we make): letters, digits, '_', '-', '.', not starting with '.'.
_PATH_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}")
# Control characters, and the Unicode line and paragraph separators that some parsers treat as line ends.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def variant_name(value, what: str = "the variant") -> str:
    """One of VAN's variants, by its canonical name (b0-b6)."""
    if not isinstance(value, str) or value not in VARIANTS:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(VARIANTS)}")
    return value


def tensor_name(value, what: str = "a tensor name") -> str:
    if not isinstance(value, str) or not _TENSOR_NAME.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a plain tensor name (letters, digits, '_', '.', ':', '-'; "
                         "at most 128 characters)")
    return value


def path_part(value, what: str = "a name") -> str:
    """A single folder or file name that stays where it is put: no separators, no '..', no leading '.'."""
    if not isinstance(value, str) or not _PATH_PART.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a plain name (letters, digits, '_', '-', '.', not starting with "
                         "'.'; at most 100 characters)")
    return value


def one_line(value, what: str = "a text", max_chars: int = 512) -> str:
    """Printable text on one line (a class name, a description): no control characters or line separators."""
    if not isinstance(value, str) or _CONTROL.search(value) or len(value) > max_chars:
        raise ValueError(f"{what} {str(value)[:60]!r} is not one line of printable text of at most {max_chars} "
                         "characters")
    return value


def number(value, what: str, low: float, high: float, integer: bool = False) -> float:
    """A finite number in low..high (an int when `integer`); a bool or a numeric string is not a number."""
    import math

    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{what} {str(value)[:60]!r} is not {'an integer' if integer else 'a number'} in "
                         f"{low:g}..{high:g}")
    return value
