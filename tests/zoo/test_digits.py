"""The training recipe's data: scikit-learn's digits as RGB images, split without overlap."""
import dataclasses

import numpy as np

from vanexport.data.images import label_indices, load_folder
from vanexport.model.variants import get_variant
from vanexport.zoo.digits import DigitsRecipe, load_digits_data, preprocess_split, write_image_folder


def test_splits_are_disjoint_stratified_and_seeded():
    recipe = DigitsRecipe()
    data = load_digits_data(recipe)
    sizes = {s: len(data.labels[s]) for s in data.labels}
    assert sizes == {"train": 1097, "calib": 300, "heldout": 400}
    flat = {s: {a.tobytes() for a in data.images[s]} for s in data.images}
    assert data.images["train"].shape[1:] == (72, 72, 3) and data.images["train"].dtype == np.uint8
    assert not (flat["heldout"] & flat["train"]) and not (flat["calib"] & flat["heldout"])  # no image in two splits
    assert not (flat["calib"] & flat["train"])
    for s in ("calib", "heldout"):
        counts = np.bincount(data.labels[s], minlength=10)
        assert counts.min() >= sizes[s] // 10 - 2  # every digit represented
    again = load_digits_data(recipe)
    assert all(np.array_equal(again.labels[s], data.labels[s]) for s in data.labels)
    other = load_digits_data(dataclasses.replace(recipe, seed=1))
    assert not np.array_equal(other.labels["heldout"], data.labels["heldout"])
    assert recipe.key() != dataclasses.replace(recipe, epochs=recipe.epochs + 1).key()


def test_saved_pngs_read_back_exactly_as_trained(tmp_path):
    recipe = DigitsRecipe()
    data = load_digits_data(recipe)
    images, labels = data.images["calib"][:12], data.labels["calib"][:12]
    write_image_folder(images, labels, tmp_path)
    pre = get_variant("b0").preprocessing.at_size(recipe.img_size)
    back = load_folder(tmp_path, pre)
    order = [int(n.split("/")[1].split(".")[0]) for n in back.names]
    assert np.array_equal(back.array, preprocess_split(images, recipe)[order])
    assert np.array_equal(label_indices(back.labels, 10), labels[order])


def test_concurrent_callers_train_once(tmp_path, monkeypatch):
    """Two test workers (or shells) asking for the same recipe at once: one trains, the other waits and loads its
    checkpoint instead of training again."""
    import threading
    import time

    import torch

    from vanexport.zoo import digits

    calls = []

    def slow_train(recipe, progress=None):
        calls.append(threading.get_ident())
        time.sleep(0.5)  # long enough for the second caller to arrive while the first trains
        return {"w": torch.zeros(1)}, {"heldout_accuracy": 1.0}

    monkeypatch.setattr(digits, "train", slow_train)
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(digits.trained_weights(cache_dir=tmp_path)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(paths) == 2 and paths[0] == paths[1] and paths[0].is_file()
