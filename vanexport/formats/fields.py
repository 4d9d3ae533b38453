"""What a string from outside (a bundle's manifest, an ONNX file's metadata, a file name, a flag) may hold before any
of it goes into a config, a script, a path or a terminal. The one rule, in one place: the record parsers call these
checks, and every writer for a destination (Triton's pbtxt, DeepStream's key files, a path) relies on them and
encodes for its destination on top.

Each check returns the value it was given when it is fine and raises ValueError saying what is wrong otherwise.
"""
from __future__ import annotations

import math
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


# ---- numbers, preprocessing and free-form records from outside ----

# The largest classifier head a record may declare. ImageNet-21k has 21 841 classes; a head beyond this is not a
# classifier anyone trained, and the cap bounds every labels file, Triton's output dims and each softmax row.
MAX_CLASSES = 65536
# The resampling filters the evaluation transform (vanexport/data/preprocess.py) resizes with.
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")
# What the preprocessing of a record may say, beyond what the transform computes from: fixed by VAN's training.
_FIXED_PREPROCESSING = {"color": "RGB", "layout": "NCHW", "scale": "1/255"}


def whole_number(value, what: str, low: int = 1, high: int = MAX_CLASSES) -> int:
    """An int (not a bool, not a float) from `low` to `high`."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{what} {value!r} is not a whole number from {low} to {high}")
    return value


def finite_number(value, what: str, low: float, high: float) -> float:
    """An int or float (not a bool, nan or infinity) from `low` to `high`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{what} {value!r} is not a number from {low:g} to {high:g}")
    return float(value)


def preprocessing(d, what: str = "preprocessing") -> dict:
    """The evaluation transform a record declares, every value in the range the transform can use: so a device
    never divides by a zero std (nan %), looks up an unknown filter (KeyError) or resizes to a size of zero."""
    if not isinstance(d, dict):
        raise ValueError(f"{what} is not a JSON object")
    for key in ("input_size", "crop_pct", "interpolation", "mean", "std"):
        if key not in d:
            raise ValueError(f"{what} has no '{key}'")
    size = whole_number(d["input_size"], f"{what}.input_size", 32, 4096)
    if size % 32:
        raise ValueError(f"{what}.input_size {size} is not a multiple of 32 (VAN downsamples by 32)")
    crop = finite_number(d["crop_pct"], f"{what}.crop_pct", 0.25, 1.0)
    if "resize_size" in d and d["resize_size"] != math.floor(size / crop):
        raise ValueError(f"{what}.resize_size {d['resize_size']!r} is not floor(input_size / crop_pct) = "
                         f"{math.floor(size / crop)}")
    if d["interpolation"] not in INTERPOLATIONS:
        raise ValueError(f"{what}.interpolation {str(d['interpolation'])[:40]!r} is not one of "
                         f"{', '.join(INTERPOLATIONS)}")
    _normalisation_and_keys(d, what, 1.0, _FIXED_PREPROCESSING, {"input_size", "resize_size", "crop_pct",
                                                                 "interpolation"})
    return d


def _normalisation_and_keys(d: dict, what: str, scale: float, fixed: dict, known: set) -> None:
    """mean and std, 3 numbers each on the pixel scale (1 or 255), the fixed values, and no unknown key. A mean lies
    on the pixel scale; a std below 1 % of it would blow each 1/255 step up past 0.4 (no trained model normalises
    so), and 0 divides by zero."""
    for key, low in (("mean", 0.0), ("std", 0.01 * scale)):
        values = d.get(key)
        if not isinstance(values, list) or len(values) != 3:
            raise ValueError(f"{what}.{key} is not a list of 3 numbers (R, G, B)")
        for i, v in enumerate(values):
            finite_number(v, f"{what}.{key}[{i}]", low, scale)
    for key, value in fixed.items():
        if key in d and d[key] != value:
            raise ValueError(f"{what}.{key} {str(d[key])[:40]!r} is not {value!r}")
    unknown = sorted(set(d) - {*known, "mean", "std", *fixed})
    if unknown:
        raise ValueError(f"{what} has the unknown key {str(unknown[0])[:40]!r}")


def printable(value, what: str, max_chars: int = 4096, depth: int = 0):
    """A free-form JSON record (provenance, history, a validation report) whose strings, keys included, are each
    one line of printable text: they are printed, and some are copied into generated files."""
    if depth > 16:
        raise ValueError(f"{what} is nested more than 16 levels deep")
    if isinstance(value, str):
        one_line(value, what, max_chars)
    elif isinstance(value, dict):
        for k, v in value.items():
            one_line(k, f"a key of {what}", 200)
            printable(v, f"{what}.{k}", max_chars, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            printable(v, f"{what}[{i}]", max_chars, depth + 1)
    elif value is not None and not isinstance(value, (int, float, bool)):
        raise ValueError(f"{what} is not a JSON value")
    return value


MAX_CLASS_NAME_CHARS = 512


def class_name(value, what: str = "a class name") -> str:
    """A class name as every reader takes it (predict, Triton's label file, DeepStream's): one line of printable
    text, not empty, no spaces around it."""
    one_line(value, what, MAX_CLASS_NAME_CHARS)
    if not value or value != value.strip():
        raise ValueError(f"{what} {value[:60]!r} is empty or has spaces around it")
    return value


def class_names(text: str, what: str = "the labels file") -> list[str]:
    """The class names of a bundle's labels file: each exactly as it is used, on a line ended by a newline ("\\n"
    only: a CR is part of no name), at most MAX_CLASSES of them. ValueError naming the line otherwise."""
    if not isinstance(text, str) or not text.endswith("\n"):
        raise ValueError(f"{what} is empty or does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) > MAX_CLASSES:
        raise ValueError(f"{what} has {len(lines)} names, more than the {MAX_CLASSES} classes a model may have")
    for i, line in enumerate(lines):
        class_name(line, f"{what} line {i + 1}")
    return lines


# A segmentation model's transform (model.tasks.SegmentationPreprocessing): mmseg's, on the 0-255 scale.
_SEGMENTATION_FIXED = {"color": "RGB", "layout": "NCHW", "scale": "0-255",
                       "logits_resize": "bilinear, align_corners=False"}


def segmentation_preprocessing(d, what: str = "preprocessing") -> dict:
    """The whole-image transform a segmentation record declares, every value in the range it can use."""
    if not isinstance(d, dict):
        raise ValueError(f"{what} is not a JSON object")
    numbers = {"input_size": (32, 4096), "short_side": (32, 8192), "long_side_max": (32, 16384),
               "size_divisor": (1, 128)}
    for key, (low, high) in numbers.items():
        if key not in d:
            raise ValueError(f"{what} has no '{key}'")
        whole_number(d[key], f"{what}.{key}", low, high)
    if d["input_size"] % 32 or d["long_side_max"] < d["short_side"]:
        raise ValueError(f"{what}: input_size is not a multiple of 32, or long_side_max is below short_side")
    if d.get("interpolation") not in INTERPOLATIONS:
        raise ValueError(f"{what}.interpolation {str(d.get('interpolation'))[:40]!r} is not one of "
                         f"{', '.join(INTERPOLATIONS)}")
    _normalisation_and_keys(d, what, 255.0, _SEGMENTATION_FIXED, {*numbers, "interpolation"})
    return d
