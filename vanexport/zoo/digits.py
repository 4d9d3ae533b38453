"""A real trained VAN to measure FP16/INT8 on: VAN-b0 on scikit-learn's handwritten digits (no download).

Random weights make precision checks meaningless (flat logits, unrealistic activations) and pretrained VAN
weights cannot be fetched everywhere, so this recipe trains one: the 1,797 8x8 digits that scikit-learn ships,
upscaled to RGB images, split (fixed seed, stratified) into train / calibration / held-out. Training sees
exactly the tensors the toolkit's own evaluation preprocessing makes from the saved PNG files, so
`--calib DIR` and `validate --images DIR` read the same inputs the model was trained on.

The weights are cached (keyed by the recipe) in $VANEXPORT_TRAINED_CACHE, default ~/.cache/vanexport/trained.

    python -m vanexport.zoo.digits OUT_DIR   # weights + OUT_DIR/{calib,heldout}/<digit>/*.png + van_b0_64.onnx
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import VanexportError
from ..files import atomic_output

SPLITS = ("train", "calib", "heldout")


@dataclass(frozen=True)
class DigitsRecipe:
    variant: str = "b0"
    img_size: int = 64  # network input; the saved PNGs are larger and go through the eval resize + crop
    image_px: int = 72
    seed: int = 0
    calib: int = 300  # images per split; the rest (1,097) trains
    heldout: int = 400
    epochs: int = 3  # 97.0 % held-out accuracy (5 epochs at 3e-3: 96.5 % in 1.9 times the time)
    batch_size: int = 64
    lr: float = 6e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    max_shift: int = 4  # random translation (pixels) during training
    channels_last: bool = True  # NHWC while training: about 25 % faster on a CPU (the convolutions' backward)
    version: int = 1  # bump when the code changes what the same fields train

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class DigitsData:
    images: dict[str, np.ndarray]  # split -> (N, px, px, 3) uint8
    labels: dict[str, np.ndarray]  # split -> (N,) int


def trained_cache_dir() -> Path:
    root = os.environ.get("VANEXPORT_TRAINED_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "vanexport", "trained")
    return Path(root)


def load_digits_data(recipe: DigitsRecipe = DigitsRecipe()) -> DigitsData:
    """The digits as RGB uint8 images, split train / calib / heldout (stratified, seeded)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise VanexportError("scikit-learn is not installed (it ships the digits data set)",
                             "pip install scikit-learn") from e
    from PIL import Image

    d = load_digits()
    gray = np.clip(d.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    images = np.stack([np.asarray(Image.fromarray(g).resize((recipe.image_px,) * 2, Image.Resampling.BICUBIC)
                                  .convert("RGB")) for g in gray])
    labels = d.target.astype(np.int64)
    rng = np.random.default_rng(recipe.seed)
    order = rng.permutation(len(labels))
    # Stratified: deal each class's shuffled indices round-robin into calib / heldout / train quotas.
    n = len(labels)
    quota = {"calib": recipe.calib, "heldout": recipe.heldout, "train": n - recipe.calib - recipe.heldout}
    picked: dict[str, list[int]] = {s: [] for s in SPLITS}
    by_class = [order[labels[order] == c] for c in range(10)]
    for c, idx in enumerate(by_class):
        k_cal = round(len(idx) * recipe.calib / n)
        k_held = round(len(idx) * recipe.heldout / n)
        picked["calib"] += list(idx[:k_cal])
        picked["heldout"] += list(idx[k_cal:k_cal + k_held])
        picked["train"] += list(idx[k_cal + k_held:])
    # Rounding leaves a split a few images off its quota: move the difference to or from train.
    for s in ("calib", "heldout"):
        while len(picked[s]) > quota[s]:
            picked["train"].append(picked[s].pop())
        while len(picked[s]) < quota[s]:
            picked[s].append(picked["train"].pop())
    return DigitsData({s: images[np.array(sorted(picked[s]))] for s in SPLITS},
                      {s: labels[np.array(sorted(picked[s]))] for s in SPLITS})


def preprocess_split(images: np.ndarray, recipe: DigitsRecipe) -> np.ndarray:
    """Exactly the variant's evaluation preprocessing, as `load_folder` applies it to the saved PNGs."""
    from ..data.preprocess import preprocess_batch
    from ..model.variants import get_variant

    return preprocess_batch(list(images), get_variant(recipe.variant).preprocessing.at_size(recipe.img_size))


def write_image_folder(images: np.ndarray, labels: np.ndarray, folder: str | Path) -> Path:
    """ImageFolder layout: folder/<digit>/<index>.png (lossless, so reading them back gives the same arrays)."""
    from PIL import Image

    folder = Path(folder)
    for i, (im, y) in enumerate(zip(images, labels)):
        (folder / str(int(y))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(folder / str(int(y)) / f"{i:04d}.png")
    return folder


def train(recipe: DigitsRecipe = DigitsRecipe(), progress: Callable[[str], None] | None = None) -> tuple[dict, dict]:
    """Train VAN on the train split; return (state dict, summary with held-out accuracy)."""
    import torch

    from ..model.factory import create_model

    step = progress or (lambda msg: None)
    data = load_digits_data(recipe)
    x = {s: torch.from_numpy(preprocess_split(data.images[s], recipe)) for s in ("train", "heldout")}
    y = {s: torch.from_numpy(data.labels[s]) for s in ("train", "heldout")}
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    model = create_model(recipe.variant, num_classes=10)
    layout = torch.channels_last if recipe.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = -(-len(y["train"]) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch,
                                                pct_start=0.15)
    t0 = time.perf_counter()
    for epoch in range(recipe.epochs):
        model.train()
        perm = torch.randperm(len(y["train"]), generator=gen)
        total = 0.0
        for i in range(0, len(perm), recipe.batch_size):
            idx = perm[i:i + recipe.batch_size]
            xb = _shift(x["train"][idx], recipe.max_shift, gen).contiguous(memory_format=layout)
            loss = torch.nn.functional.cross_entropy(model(xb), y["train"][idx],
                                                     label_smoothing=recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        step(f"epoch {epoch + 1}/{recipe.epochs}: loss {total / len(perm):.3f} ({time.perf_counter() - t0:.0f} s)")
    model = model.to(memory_format=torch.contiguous_format).eval()  # the saved weights are in the usual layout
    with torch.inference_mode():
        pred = torch.cat([model(b).argmax(1) for b in x["heldout"].split(100)])
    acc = float((pred == y["heldout"]).float().mean())
    summary = {"recipe": asdict(recipe), "key": recipe.key(), "heldout_accuracy": acc,
               "train_seconds": round(time.perf_counter() - t0, 1), "torch": str(torch.__version__)}
    step(f"held-out accuracy {acc:.2%}")
    return model.state_dict(), summary


def _shift(xb, max_shift: int, gen):
    """Random translation by up to max_shift pixels (the background value fills the gap)."""
    import torch

    if max_shift <= 0:
        return xb
    out = torch.full_like(xb, float(xb[:, :, 0, 0].min()))
    h, w = xb.shape[2:]
    for i, (dy, dx) in enumerate(torch.randint(-max_shift, max_shift + 1, (len(xb), 2), generator=gen).tolist()):
        out[i, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            xb[i, :, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def trained_weights(recipe: DigitsRecipe = DigitsRecipe(), cache_dir: str | Path | None = None,
                    progress: Callable[[str], None] | None = None) -> Path:
    """The trained checkpoint for `recipe`: from the cache, or trained now (0.5 to 1.5 min on 2 cores)."""
    import torch

    path = Path(cache_dir or trained_cache_dir()) / f"van_{recipe.variant}_digits_{recipe.key()}.pth"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # One trainer at a time (parallel test workers, two shells): the others wait, then load its checkpoint.
    with open(path.with_suffix(".lock"), "a") as lock:
        _lock(lock)
        if path.exists():
            return path
        say = progress or (lambda m: None)
        say(f"training VAN-{recipe.variant} on scikit-learn digits (cached in {path.parent})")
        state_dict, summary = train(recipe, progress)
        with atomic_output(path) as tmp:
            torch.save({"state_dict": state_dict, "vanexport_digits": summary}, tmp)
    return path


def _lock(file) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; a second trainer only repeats the work
        return
    fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes


def read_summary(weights: str | Path) -> dict:
    import torch

    return torch.load(weights, map_location="cpu", weights_only=True).get("vanexport_digits", {})


@dataclass
class DigitsArtifacts:
    weights: str
    onnx: str
    calib_dir: str
    heldout_dir: str
    heldout_accuracy: float
    recipe_key: str

    def to_dict(self) -> dict:
        return asdict(self)


def prepare(out_dir: str | Path, recipe: DigitsRecipe = DigitsRecipe(),
            progress: Callable[[str], None] | None = None) -> DigitsArtifacts:
    """Everything a precision check needs: trained weights, the FP32 ONNX, calib/ and heldout/ image folders."""
    from ..export.onnx import export_onnx

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = trained_weights(recipe, progress=progress)
    folders = {split: out / split for split in ("calib", "heldout")}
    if not all(f.exists() for f in folders.values()):
        data = load_digits_data(recipe)
        for split, folder in folders.items():
            if not folder.exists():
                write_image_folder(data.images[split], data.labels[split], folder)
    onnx_path = out / f"van_{recipe.variant}_{recipe.img_size}.onnx"
    if not onnx_path.exists():
        export_onnx(recipe.variant, str(weights), num_classes=10, img_size=recipe.img_size, output=onnx_path,
                    progress=progress)
    return DigitsArtifacts(str(weights), str(onnx_path), str(folders["calib"]), str(folders["heldout"]),
                           read_summary(weights).get("heldout_accuracy", float("nan")), recipe.key())


def given_or_prepared(given: str | Path | None, scratch: str | Path,
                      progress: Callable[[str], None] | None = None) -> Path:
    """The folder a script measures on: `given` (made by `prepare` earlier, possibly on another machine: used as it
    is, nothing trained) or, without one, a folder `prepared` now under `scratch`."""
    return Path(given) if given else prepared(scratch, progress=progress)


def prepared(root: str | Path, recipe: DigitsRecipe = DigitsRecipe(),
             progress: Callable[[str], None] | None = None) -> Path:
    """A complete `prepare` folder for `recipe` in `root`, made once by whichever caller comes first (parallel test
    workers share one per run and copy it, instead of each exporting and writing the images again). Not kept across
    runs on purpose: the ONNX file is the export code's output, which the recipe's key does not cover."""
    folder = Path(root) / f"van_{recipe.variant}_digits_{recipe.key()}"
    if folder.is_dir():
        return folder
    trained_weights(recipe, progress=progress)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".prepare.lock"), "a") as lock:
        _lock(lock)
        if not folder.is_dir():  # made in a folder of its own, then renamed: never seen half-written
            partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
            shutil.rmtree(partial, ignore_errors=True)
            prepare(partial, recipe, progress)
            os.rename(partial, folder)
    return folder


def main(argv=None) -> None:
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m vanexport.zoo.digits", description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", help="where to write the ONNX file and the calib/ and heldout/ image folders")
    args = ap.parse_args(argv)
    # Idle OpenMP threads sleep instead of spinning (set before torch loads): training on a busy 2-core machine
    # was several times slower with spinning threads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    art = prepare(args.out_dir, progress=lambda m: print(f"• {m}", file=sys.stderr))
    print(json.dumps(art.to_dict(), indent=2))


if __name__ == "__main__":
    main()
