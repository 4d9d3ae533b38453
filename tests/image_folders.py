"""Class-balanced subsets of an ImageFolder-style folder (`<class>/<image>`), for tests that need a few images."""
import shutil
from pathlib import Path


def class_subset(src, dst, per_class: int, link: bool = False) -> Path:
    """The first `per_class` images (by name) of every class folder of `src`, copied (or symlinked) into `dst`."""
    dst = Path(dst)
    for label in sorted(p for p in Path(src).iterdir() if p.is_dir()):
        (dst / label.name).mkdir(parents=True, exist_ok=True)
        for image in sorted(label.iterdir())[:per_class]:
            if link:
                (dst / label.name / image.name).symlink_to(image.resolve())
            else:
                shutil.copy(image, dst / label.name / image.name)
    return dst
