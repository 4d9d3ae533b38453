"""Segmentation logits (N, C, H, W) go through the same comparison as a classifier's: every metric per pixel."""
import numpy as np

from vanexport.check.metrics import compare_logits


def test_top1_agreement_of_segmentation_logits_is_the_pixel_agreement():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)  # 2 images, 5 classes, 12 pixels each
    candidate = reference.copy()
    winner = reference[1, :, 2, 1].argmax()
    candidate[1, (winner + 1) % 5, 2, 1] = reference[1, :, 2, 1].max() + 1  # one pixel of 24 changes its class
    m = compare_logits(candidate, reference)
    assert m["n"] == 2 and m["top1_agree"] == 23 / 24 and m["top5_agree"] == 1.0
    assert m["min_cosine"] < 0.99 < m["mean_cosine"]  # the changed pixel's class scores, among 23 identical ones
    assert np.isclose(m["max_abs_err"], np.abs(candidate - reference).max())
