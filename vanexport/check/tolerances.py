"""What "close enough to PyTorch FP32" means for each precision, and the verdict from the numbers."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    precision: str = "fp32"
    atol: float = 1e-4  # on logits; the FP32 verdict
    rtol: float = 0.0  # Polygraphy passes an output if max abs <= atol OR max rel <= rtol; 0 = abs only
    min_top1_agree: float | None = None
    min_cosine: float | None = None  # on the worst image
    max_accuracy_drop: float | None = None  # top-1 accuracy points lost against labels (when the images have them)
    check_atol: bool = True  # FP16/INT8 are judged by agreement, not by max abs (unless --atol is given)


# FP16 and INT8 change logits by design: they are judged on what a user sees (same class, same direction).
TOLERANCES = {
    "fp32": Tolerance("fp32", atol=1e-4, rtol=0.0),
    "fp16": Tolerance("fp16", atol=1e-1, min_top1_agree=0.995, min_cosine=0.9999, check_atol=False),
    "int8": Tolerance("int8", atol=1.0, min_top1_agree=0.97, max_accuracy_drop=1.0, check_atol=False),
    # OpenVINO's BF16 on the CPU (no file of its own): 8 significant bits to FP16's 11, so the cosine bound is a
    # decade below FP16's. The trained digits VAN in BF16: 99.75 % agreement, worst cosine 0.999991 (400 images).
    "bf16": Tolerance("bf16", atol=1e-1, min_top1_agree=0.99, min_cosine=0.999, check_atol=False),
}
# TensorRT picks other convolution algorithms than ONNX Runtime and PyTorch: an FP32 engine (TF32 off) is held to
# max abs 1e-3 on logits. FP16/INT8 engines use the tolerances of their precision, as their ONNX files do.
ENGINE_FP32 = Tolerance("fp32", atol=1e-3, rtol=0.0)


# Segmentation logits are 150 classes x (H/4) x (W/4) per image: a VAN-b0 Semantic FPN at 512x512 (random weights,
# logits up to 25) differs between ONNX Runtime and PyTorch by up to 2.3e-4 (4e-6 of the logit range), float32
# rounding over 2.5 million logits per image. FP32 is held to max abs 1e-3 there, and to the 99.9 % pixel
# agreement (top1_agree counts pixels for segmentation logits, check/metrics.py).
SEGMENTATION_FP32 = Tolerance("fp32", atol=1e-3, rtol=0.0, min_top1_agree=0.999)


def engine_tolerance(precision: str) -> Tolerance:
    return ENGINE_FP32 if precision == "fp32" else TOLERANCES[precision]


def with_overrides(base: Tolerance, atol=None, rtol=None) -> Tolerance:
    """The precision's tolerance with the user's --atol/--rtol; either one makes max abs error count again."""
    return dataclasses.replace(base, atol=atol if atol is not None else base.atol,
                               rtol=rtol if rtol is not None else base.rtol,
                               check_atol=base.check_atol or atol is not None or rtol is not None)


def abs_ok(overall: dict, tol: Tolerance) -> bool:
    """Max abs error within atol, or max rel error within rtol (Polygraphy's rule, for callers without a run)."""
    return overall["max_abs_err"] <= tol.atol or bool(tol.rtol and overall["max_rel_err"] <= tol.rtol)


def verdict_failures(overall: dict, tol: Tolerance, polygraphy_passed: bool, accuracy: dict | None = None) -> list[str]:
    if overall.get("nonfinite_reference"):  # nothing to compare with: not a mismatch of the candidate's
        return [f"the PyTorch FP32 reference itself gives NaN/inf logits on {overall['nonfinite_reference']} of "
                f"{overall['n']} inputs (the weights overflow): no verdict on these inputs"]
    out = []
    if overall.get("nonfinite_candidate"):
        out.append(f"NaN/inf logits on {overall['nonfinite_candidate']} of {overall['n']} inputs")
    if tol.check_atol and not polygraphy_passed:
        out.append(f"max abs error {overall['max_abs_err']:.2e} > atol {tol.atol:.0e}"
                   + (f" and max rel error > rtol {tol.rtol:.0e}" if tol.rtol else ""))
    if tol.min_top1_agree is not None and overall["top1_agree"] < tol.min_top1_agree:
        out.append(f"top-1 agreement {overall['top1_agree']:.2%} < {tol.min_top1_agree:.2%}")
    if tol.min_cosine is not None and overall["min_cosine"] < tol.min_cosine:
        out.append(f"cosine {overall['min_cosine']:.6f} < {tol.min_cosine}")
    if tol.max_accuracy_drop is not None and accuracy is not None and accuracy["drop_points"] > tol.max_accuracy_drop:
        out.append(f"accuracy drop {accuracy['drop_points']:.2f} points > {tol.max_accuracy_drop}")
    return out


def passes(row: dict, tol: Tolerance) -> bool:
    """The agreement part of a verdict (top-1, cosine, accuracy drop) for a row of metrics (sensitivity)."""
    ok = not row.get("nonfinite_reference") and not row.get("nonfinite_candidate")
    ok = ok and (tol.min_top1_agree is None or row["top1_agree"] >= tol.min_top1_agree)
    ok = ok and (tol.min_cosine is None or row["min_cosine"] >= tol.min_cosine)
    if tol.max_accuracy_drop is not None and "accuracy_drop" in row:
        ok = ok and row["accuracy_drop"] <= tol.max_accuracy_drop
    return bool(ok)
