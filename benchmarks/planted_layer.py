"""What an INT8 problem looks like, and how `sensitivity` finds it: the table of docs/commands/sensitivity.md.

One channel of the stage-1 LayerNorm of the trained digits VAN-b0 (vanexport.zoo.digits) is scaled by K and the next
convolution's matching input weights divided by K: the FP32 function is unchanged, but the per-tensor INT8 scale of
`/patch_embed2`'s input is now set by that one channel. Sensitivity (depth 1, max calibration on 64 images) on all
400 held-out images, then `quantize_int8` with the printed exclusion. tests/precision/test_precision.py plants the
same layer (with this script's function) and checks the same on 40 images.
Writes benchmarks/results/planted_layer.json.

    python benchmarks/planted_layer.py [--digits DIR]   # DIR: made by `python -m vanexport.zoo.digits DIR`
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the PyTorch reference on a busy 2-core machine

K, CHANNEL = 1000.0, 5


def plant_activation_outlier(src, dst, k: float = K, channel: int = CHANNEL) -> str:
    """Write `src` with the outlier planted to `dst`; return the name of the convolution whose input it skews."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(src)
    inits = {i.name: i for i in model.graph.initializer}
    ln = next(n for n in model.graph.node if n.op_type == "LayerNormalization" and n.name.startswith("/norm1"))
    for name in ln.input[1:]:  # scale and bias of that channel
        a = numpy_helper.to_array(inits[name]).copy()
        a[channel] *= k
        inits[name].CopyFrom(numpy_helper.from_array(a, name))
    conv = next(n for n in model.graph.node if n.name.startswith("/patch_embed2/"))
    w = numpy_helper.to_array(inits[conv.input[1]]).copy()
    w[:, channel] /= k
    inits[conv.input[1]].CopyFrom(numpy_helper.from_array(w, conv.input[1]))
    onnx.save(model, dst)
    return conv.name


def _row(name: str, nodes, r: dict) -> dict:
    return {"group": name, "nodes": nodes, "top1_agree": r["top1_agree"], "mean_cosine": r["mean_cosine"],
            "accuracy_drop": r.get("accuracy_drop")}


def main():
    from vanexport.precision.int8 import quantize_int8
    from vanexport.precision.sensitivity import sensitivity
    from vanexport.zoo.digits import given_or_prepared

    ap = argparse.ArgumentParser()
    ap.add_argument("--digits", help="a folder made by `python -m vanexport.zoo.digits` [default: made now]")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "planted_layer.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        digits = given_or_prepared(args.digits, tmp)
        planted = tmp / "planted.onnx"
        conv = plant_activation_outlier(digits / "van_b0_64.onnx", planted)
        calib, heldout = digits / "calib", digits / "heldout"
        report = sensitivity(planted, calib, images=heldout, depth=1, num_calib=64, method="max")
        fixed = quantize_int8(planted, calib, tmp / "fixed.onnx", num_calib=64, method="max",
                              exclude=report.recommended, images=heldout)
    worst_other = next(g for g in report.groups if not conv.startswith(g["name"] + "/"))
    rows = [_row(f"{report.groups[0]['name']} alone in INT8", report.groups[0]["nodes"], report.groups[0]),
            _row(f"worst other group ({worst_other['name']})", worst_other["nodes"], worst_other),
            _row("whole model INT8", None, report.baseline),
            _row(f"whole model, --exclude {' '.join(report.recommended)}", None,
                 {**fixed.validation["overall"],
                  "accuracy_drop": (fixed.validation.get("accuracy") or {}).get("drop_points")})]
    record = {"what": f"one LayerNorm channel x{K:g} before {conv}, FP32 function unchanged; sensitivity depth 1, "
                      "max calibration on 64 images, 400 held-out images",
              "planted_conv": conv, "recommended": report.recommended, "fixed_passed": fixed.validation["passed"],
              "sensitivity_seconds": report.seconds, "rows": rows,
              "python": platform.python_version(), "machine": platform.machine()}
    for r in rows:
        drop = "-" if r["accuracy_drop"] is None else f"{r['accuracy_drop']:.2f}"
        print(f"{r['group']:<48} {r['nodes'] or '':>4}  {r['top1_agree']:.2%}  {r['mean_cosine']:.6f}  {drop}")
    print(f"recommended {report.recommended}; sensitivity {report.seconds} s")
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
