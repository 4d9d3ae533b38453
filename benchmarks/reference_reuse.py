"""What keeping the PyTorch reference's outputs saves: the checks of a chain (FP32, FP16 and INT8 files of one model,
validated on the same images, as `vanexport bundle --precisions fp16,int8 --images DIR` does) with the outputs kept
(vanexport.check.compare.ReferenceOutputs) and with nothing kept, alternating, in one process.

On the trained digits VAN-b0 (vanexport.zoo.digits) and its 400 held-out images at 64x64. Writes
benchmarks/results/reference_reuse.json; the figure is quoted in docs/design.md.

    python benchmarks/reference_reuse.py [--digits DIR] [--rounds 3]  # DIR: from `python -m vanexport.zoo.digits DIR`
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the PyTorch reference on a busy 2-core machine


def check_chain(files: list[str], images: str) -> tuple[float, list[bool]]:
    from vanexport.check.validate import validate

    t0 = time.perf_counter()
    passed = [validate(f, images=images).passed for f in files]
    return time.perf_counter() - t0, passed


def main():
    from vanexport.check.compare import ReferenceOutputs
    from vanexport.precision.fp16 import convert_fp16
    from vanexport.precision.int8 import quantize_int8
    from vanexport.zoo.digits import given_or_prepared

    ap = argparse.ArgumentParser()
    ap.add_argument("--digits", help="a folder made by `python -m vanexport.zoo.digits` [default: made now]")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "reference_reuse.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        digits = given_or_prepared(args.digits, tmp)  # a given folder as it is: `prepare` would train here
        fp32 = str(digits / "van_b0_64.onnx")
        fp16 = convert_fp16(fp32, Path(tmp) / "fp16.onnx", validate=False).path
        int8 = quantize_int8(fp32, digits / "calib", Path(tmp) / "int8.onnx", num_calib=64, method="max",
                             validate=False).path
        files, kept_limit = [fp32, fp16, int8], ReferenceOutputs.LIMIT_BYTES
        seconds = {"kept": [], "not kept": []}
        for _ in range(args.rounds):
            for mode in seconds:  # alternating: the machine's drift falls on both
                ReferenceOutputs.forget()
                ReferenceOutputs.LIMIT_BYTES = kept_limit if mode == "kept" else 0
                s, passed = check_chain(files, str(digits / "heldout"))
                assert all(passed), f"a check failed ({mode})"
                seconds[mode].append(s)
        ReferenceOutputs.LIMIT_BYTES = kept_limit
    median = {m: statistics.median(v) for m, v in seconds.items()}
    result = {"what": "validate FP32, FP16 and INT8 ONNX files of the digits VAN-b0 on its 400 held-out images "
                      "(64x64), one process", "machine": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "rounds": args.rounds, "seconds": seconds, "median_s": median,
              "speedup": median["not kept"] / median["kept"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"three checks on 400 images: {median['not kept']:.1f} s with nothing kept, {median['kept']:.1f} s with "
          f"the reference's outputs kept ({result['speedup']:.2f}x); wrote {args.out}")


if __name__ == "__main__":
    main()
