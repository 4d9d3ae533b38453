"""Regenerate vanexport/data/imagenet1k_classes.tsv from timm's class lists (no network beyond PyPI).

ImageNet-1k class names ship with vanexport so a device never downloads them. They come from timm (Apache-2.0),
`timm/data/_info/imagenet_synsets.txt` (the 1000 WordNet ids in class-index order) and
`imagenet_synset_to_lemma.txt` (their WordNet lemmas). Usage:

    pip download --no-deps timm -d /tmp/timm && python tools/make_imagenet_labels.py /tmp/timm/timm-*.whl
"""
from __future__ import annotations

import csv
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "vanexport" / "data" / "imagenet1k_classes.tsv"


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as z:
        synsets = z.read("timm/data/_info/imagenet_synsets.txt").decode().split()
        lemmas = dict(csv.reader(z.read("timm/data/_info/imagenet_synset_to_lemma.txt").decode().splitlines(),
                                 delimiter="\t"))
    assert len(synsets) == 1000, len(synsets)
    OUT.write_text("".join(f"{s}\t{lemmas[s]}\n" for s in synsets), encoding="utf-8")
    print(f"wrote {OUT} (1000 classes from {Path(wheel).name})")


if __name__ == "__main__":
    main(sys.argv[1])
