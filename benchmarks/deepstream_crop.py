"""How far DeepStream's preprocessing is from VAN's validated one: top-1 agreement on the 400 held-out digits of the
trained digits VAN-b0 (vanexport.zoo.digits), for the config's centre crop (nvdspreprocess ROI) and nvinfer's
stretch, each emulated with Pillow (`vanexport.ship.deepstream.emulate`) against resize + centre crop.

Three framings of the same 400 images:
  native      the 72x72 PNGs as frames (the ROI's even-pixel rounding is a whole pixel at this size)
  720p-square the same upscaled (bicubic) to 720x720: a realistic frame size
  720p-16:9   the 720x720 image centred on a black 1280x720 frame: what a 16:9 camera gives a full-frame classifier
Writes benchmarks/results/deepstream_crop.json.

    python benchmarks/deepstream_crop.py [--digits DIR]   # DIR: made by `python -m vanexport.zoo.digits DIR`
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

from PIL import Image


def framed(src: Path, dst: Path, size: int | None, wide: bool) -> None:
    for f in sorted(src.rglob("*.png")):
        im = Image.open(f).convert("RGB")
        if size:
            im = im.resize((size, size), Image.Resampling.BICUBIC)
        if wide:
            frame = Image.new("RGB", (im.size[1] * 16 // 9, im.size[1]))
            frame.paste(im, ((frame.size[0] - im.size[0]) // 2, 0))
            im = frame
        (dst / f.parent.name).mkdir(parents=True, exist_ok=True)
        im.save(dst / f.parent.name / f.name)


def main():
    from vanexport.formats.onnx_metadata import read_metadata
    from vanexport.ship.deepstream import measure_agreement
    from vanexport.zoo.digits import given_or_prepared

    ap = argparse.ArgumentParser()
    ap.add_argument("--digits", help="a folder made by `python -m vanexport.zoo.digits` [default: made now]")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "deepstream_crop.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        digits = given_or_prepared(args.digits, tmp)
        onnx = digits / "van_b0_64.onnx"
        pre = read_metadata(onnx).preprocess
        rows = {}
        for name, size, wide in (("native", None, False), ("720p-square", 720, False), ("720p-16:9", 720, True)):
            folder = tmp / name.replace(":", "x")
            framed(digits / "heldout", folder, size, wide)
            a = measure_agreement(onnx, folder, pre)
            rows[name] = {"centre-crop": a["centre-crop"], "stretch": a["stretch"], "images": a["images"]}
            print(f"{name:<12} centre crop {a['centre-crop']:.2%}   stretch {a['stretch']:.2%}   ({a['images']} images)")
    record = {"what": "top-1 agreement with resize + centre crop (the validated preprocessing), FP32 ONNX on "
                      "ONNX Runtime CPU, Pillow bicubic standing in for DeepStream's GPU cubic",
              "model": "digits VAN-b0 (vanexport.zoo.digits), 64x64 input, resize 71", "rows": rows,
              "python": platform.python_version(), "machine": platform.machine()}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
