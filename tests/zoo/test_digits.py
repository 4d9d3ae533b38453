"""The training recipe's data: scikit-learn's digits as RGB images, split without overlap."""
import dataclasses

import numpy as np
import pytest

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


def wait_until_blocked_on(lock_path, caller) -> None:
    """Return once the kernel lists a request waiting for the flock on `lock_path` (a `->` line in /proc/locks);
    fail if `caller` finishes first (it never waited). No time limit decides anything: either event ends it."""
    import os
    import time
    from pathlib import Path

    locks = Path("/proc/locks")
    if not locks.exists():
        pytest.skip("needs Linux's /proc/locks to see a caller waiting for the lock")
    st = os.stat(lock_path)
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    while caller.is_alive():
        if any(line.split()[1] == "->" and where in line.split() for line in locks.read_text().splitlines()):
            return
        time.sleep(0.005)  # polling the kernel's table, not waiting for a duration
    raise AssertionError("the second caller went ahead without waiting for the lock")


def holding_lock(path):
    """The lock file's flock, held by the test as another trainer (another worker, another shell) would hold it."""
    import fcntl

    f = open(path, "a")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def test_a_caller_waits_for_the_trainer_then_loads_its_checkpoint(tmp_path, monkeypatch):
    """Two test workers (or shells) asking for the same recipe at once: while one trains (here: the test, holding
    the lock), the other waits; when the lock is released it finds the checkpoint and does not train again."""
    import threading

    import torch

    from vanexport.zoo import digits

    trained = []
    monkeypatch.setattr(digits, "train", lambda recipe, progress=None: trained.append(1) or ({}, {}))
    path = tmp_path / f"van_b0_digits_{DigitsRecipe().key()}.pth"
    lock = holding_lock(path.with_suffix(".lock"))
    result = []
    caller = threading.Thread(target=lambda: result.append(digits.trained_weights(cache_dir=tmp_path)))
    caller.start()
    try:
        wait_until_blocked_on(path.with_suffix(".lock"), caller)
        torch.save({"state_dict": {"w": torch.zeros(1)}, "vanexport_digits": {}}, path)  # the other trainer's result
    finally:
        lock.close()  # releases the flock
        caller.join()
    assert result == [path] and trained == []


def test_a_caller_waits_for_the_preparing_worker_then_uses_its_folder(tmp_path, monkeypatch):
    """`prepared`: while one worker exports and writes the images (here: the test, holding the lock), another
    waits, then uses the finished folder instead of preparing its own."""
    import threading

    from vanexport.zoo import digits

    monkeypatch.setattr(digits, "trained_weights", lambda recipe, progress=None: tmp_path / "w.pth")
    monkeypatch.setattr(digits, "prepare", lambda *a, **k: (_ for _ in ()).throw(AssertionError("prepared twice")))
    folder = tmp_path / "run" / f"van_b0_digits_{DigitsRecipe().key()}"
    folder.parent.mkdir()
    lock_path = folder.with_name(folder.name + ".prepare.lock")
    lock = holding_lock(lock_path)
    result = []
    caller = threading.Thread(target=lambda: result.append(digits.prepared(tmp_path / "run")))
    caller.start()
    try:
        wait_until_blocked_on(lock_path, caller)
        folder.mkdir()  # the other worker renames its finished folder into place
    finally:
        lock.close()
        caller.join()
    assert result == [folder]


def test_prepared_makes_one_folder_and_copies_need_no_work(tmp_path, monkeypatch):
    """`prepared` exports and writes the images once (never leaving a half-written folder), a second call uses that
    folder, and `prepare` on a copy of it only makes the record."""
    import shutil

    import torch

    import vanexport.export.onnx as export
    from vanexport.zoo import digits

    monkeypatch.setenv("VANEXPORT_TRAINED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(digits, "train", lambda recipe, progress=None: ({"w": torch.zeros(1)}, {"heldout_accuracy": 1.0}))
    exports = []

    def fake_export(variant, weights, output, **kwargs):
        exports.append(output)
        output.write_bytes(b"onnx")

    monkeypatch.setattr(export, "export_onnx", fake_export)
    folders = [digits.prepared(tmp_path / "run") for _ in range(2)]
    assert len(exports) == 1 and folders[0] == folders[1]
    assert sorted(p.name for p in folders[0].iterdir()) == ["calib", "heldout", "van_b0_64.onnx"]
    assert len(list(folders[0].rglob("*.png"))) == 700
    assert not [p for p in (tmp_path / "run").iterdir() if ".partial-" in p.name]

    copy = shutil.copytree(folders[0], tmp_path / "copy")
    monkeypatch.setattr(digits, "load_digits_data", lambda recipe: (_ for _ in ()).throw(AssertionError("rewritten")))
    art = digits.prepare(copy)
    assert len(exports) == 1 and art.onnx == str(copy / "van_b0_64.onnx") and art.heldout_accuracy == 1.0


def test_a_given_folder_is_used_as_it_is_and_none_is_prepared_in_the_scratch_folder(tmp_path, monkeypatch):
    from vanexport.zoo import digits

    made = []
    monkeypatch.setattr(digits, "prepared", lambda root, progress=None: made.append(root) or root / "made")
    assert digits.given_or_prepared(tmp_path / "mine", tmp_path / "scratch") == tmp_path / "mine" and not made
    assert digits.given_or_prepared(None, tmp_path / "scratch") == tmp_path / "scratch" / "made"
    assert made == [tmp_path / "scratch"]


def test_the_recipe_trains_a_model_the_precision_tests_can_trust(digits):
    """The precision tests judge FP16 and INT8 by how far they move a trained model; on an untrained one (10 %)
    every conversion looks harmless. The floor is 95 % on the 400 held-out digits. (In a parallel run this test
    comes first, so one worker trains while the others work: tests/conftest.py.)"""
    from vanexport.data.images import list_images

    assert digits.heldout_accuracy >= 0.95
    for folder, count in ((digits.calib_dir, 300), (digits.heldout_dir, 400)):
        images = list_images(folder)
        assert len(images) == count and {p.parent.name for p in images} == {str(d) for d in range(10)}
