"""How close two sets of logits are: the numbers behind every verdict."""
from __future__ import annotations

import numpy as np


def topk(logits: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-logits, axis=1, kind="stable")[:, :k]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-sample cosine similarity of two (N, C) arrays. Two zero rows agree (1); a zero row against any other
    has no direction in common with it (0)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf * 0 in a non-finite row: NaN, counted and judged by the verdict
        num = (a64 * b64).sum(1)
    norm_a, norm_b = np.linalg.norm(a64, axis=1), np.linalg.norm(b64, axis=1)
    den = norm_a * norm_b
    both_zero = (norm_a == 0) & (norm_b == 0)
    return np.where(den > 0, num / np.maximum(den, 1e-300), np.where(both_zero, 1.0, 0.0))


def compare_logits(candidate: np.ndarray, reference: np.ndarray) -> dict:
    """Errors of `candidate` against `reference`, both (N, C), or both (N, C, H, W) segmentation logits: the class
    axis is axis 1 either way, so for segmentation every per-sample metric is per pixel (top1_agree is the pixel
    agreement of the argmax, cosines are over each pixel's class scores) and `n` counts images.

    max_rel_err is max|diff| / max|reference|: relative to the logit range, so it does not explode on
    near-zero logits. top1_agree: same argmax. top5_agree: the reference's top-1 is in the candidate's top-5.
    """
    candidate, reference = np.asarray(candidate, np.float32), np.asarray(reference, np.float32)
    diff = np.abs(candidate.astype(np.float64) - reference)
    ref_top1 = topk(reference, 1)[:, 0]
    cand_top5 = topk(candidate, min(5, candidate.shape[1]))
    return {
        "n": int(reference.shape[0]),
        "max_abs_err": float(diff.max()),
        "mean_abs_err": float(diff.mean()),
        "max_rel_err": float(diff.max() / max(float(np.abs(reference).max()), 1e-12)),
        "min_cosine": float(cosine(candidate, reference).min()),
        "mean_cosine": float(cosine(candidate, reference).mean()),
        "top1_agree": float((cand_top5[:, 0] == ref_top1).mean()),
        "top5_agree": float((cand_top5 == ref_top1[:, None]).any(1).mean()),
        # rows holding NaN/inf: such a reference makes every number above meaningless (the verdict says so)
        "nonfinite_reference": int((~np.isfinite(reference)).any(1).sum()),
        "nonfinite_candidate": int((~np.isfinite(candidate)).any(1).sum()),
    }


def merge(rows: list[dict]) -> dict:
    """Combine per-group comparisons into one, weighting averages by sample count."""
    n = sum(r["n"] for r in rows)
    w = [r["n"] / n for r in rows]
    return {
        "n": n,
        "max_abs_err": max(r["max_abs_err"] for r in rows),
        "mean_abs_err": sum(wi * r["mean_abs_err"] for wi, r in zip(w, rows)),
        "max_rel_err": max(r["max_rel_err"] for r in rows),
        "min_cosine": min(r["min_cosine"] for r in rows),
        "mean_cosine": sum(wi * r["mean_cosine"] for wi, r in zip(w, rows)),
        "top1_agree": sum(wi * r["top1_agree"] for wi, r in zip(w, rows)),
        "top5_agree": sum(wi * r["top5_agree"] for wi, r in zip(w, rows)),
        "nonfinite_reference": sum(r["nonfinite_reference"] for r in rows),
        "nonfinite_candidate": sum(r["nonfinite_candidate"] for r in rows),
    }


def accuracy(labelled: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """Top-1 accuracy of candidate and reference against labels, from (candidate, reference, labels) groups."""
    cand = np.concatenate([c for c, _, _ in labelled])
    ref = np.concatenate([r for _, r, _ in labelled])
    y = np.concatenate([lb for _, _, lb in labelled])
    ref_acc, cand_acc = float((ref.argmax(1) == y).mean()), float((cand.argmax(1) == y).mean())
    return {"n": int(len(y)), "reference": ref_acc, "candidate": cand_acc, "drop_points": 100 * (ref_acc - cand_acc)}
