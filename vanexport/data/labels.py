"""Class names: ImageNet-1k (shipped with the package, no download), a labels file, or numbered classes."""
from __future__ import annotations

import functools
from pathlib import Path

from ..errors import VanexportError
from ..files import regular_file

_IMAGENET_FILE = Path(__file__).with_name("imagenet1k_classes.tsv")
# Where the shipped names come from (regenerate with tools/make_imagenet_labels.py).
IMAGENET_SOURCE = "imagenet-1k (WordNet lemmas in class-index order, from timm 1.0.31's class lists)"


@functools.lru_cache(maxsize=1)
def _imagenet_rows() -> tuple[tuple[str, str], ...]:
    rows = tuple(tuple(line.split("\t", 1)) for line in _IMAGENET_FILE.read_text(encoding="utf-8").splitlines())
    assert len(rows) == 1000, "vanexport/data/imagenet1k_classes.tsv must hold 1000 classes"
    return rows  # type: ignore[return-value]


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names in class-index order ("tench, Tinca tinca", "goldfish, ...", ...)."""
    return [name for _, name in _imagenet_rows()]


def imagenet_synsets() -> list[str]:
    """The WordNet ids of the 1000 classes ("n01440764", ...), in class-index order."""
    return [wnid for wnid, _ in _imagenet_rows()]


def read_labels(path: str | Path, num_classes: int | None = None) -> list[str]:
    """One class name per line (blank lines at the end are ignored, CRLF line ends too); the count must fit the
    model. Lines end at "\n" only: a CR inside a name stays there, for the caller's checks to see (read as text, it
    would silently split the name in two and shift every later class by one)."""
    path = regular_file(path, "labels file", "pass a text file with one class name per line")
    try:
        labels = path.read_bytes().decode("utf-8").rstrip("\r\n").split("\n")
    except UnicodeDecodeError:
        raise VanexportError(f"labels file '{path}' is not UTF-8 text", "pass a text file with one class name per line") from None
    labels = [line.strip() for line in labels]
    if num_classes is not None and len(labels) != num_classes:
        raise VanexportError(f"labels file '{path}' has {len(labels)} lines but the model has {num_classes} classes",
                             "give one name per class, in class-index order")
    if any(not line for line in labels):
        raise VanexportError(f"labels file '{path}' has empty lines", "give every class a name")
    return labels


def default_labels(num_classes: int) -> tuple[list[str], str]:
    """ImageNet-1k names for a 1000-class head, else class_0 .. class_{n-1}; and where they came from."""
    if num_classes == 1000:
        return imagenet_classes(), IMAGENET_SOURCE
    return [f"class_{i}" for i in range(num_classes)], "numbered (the model's own class names are unknown)"
