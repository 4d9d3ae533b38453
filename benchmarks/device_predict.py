"""What a device pays to classify one photo with a VAN-b0 bundle: `vanexport predict` without PyTorch, as a fresh
process, side by side (same run, interleaved) with the PyTorch eager reference on the same photo.

Three regimes, each a fresh process timed from outside, with the child's peak RSS:
  predict, first run   the bundle is checked (every sha256) and unpacked into the cache, then ONNX Runtime CPU
  predict, warm cache  the unpacked bundle is re-checked (hashes) and reused
  torch reference      import torch + vanexport, build VAN-b0 with the same weights, preprocess, one forward pass
The bundle itself (size, files) is recorded too. Writes benchmarks/results/device_predict.json.

    python benchmarks/device_predict.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BLOCK_TORCH = ("import importlib.abc, sys\n"
               "class B(importlib.abc.MetaPathFinder):\n"
               "    def find_spec(self, n, p=None, t=None):\n"
               "        if n.split('.')[0] in ('torch', 'onnx', 'polygraphy', 'skimage'): raise ImportError(n)\n"
               "sys.meta_path.insert(0, B())\n")


def timed(code: str, env: dict) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed:\n{err}")
    return wall, usage.ru_maxrss / 1024, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "device_predict.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo, bundle_path = tmp / "chelsea.png", tmp / "van_b0_bundle.tar.gz"
        # Made in a child process: this one stays small, because a child's peak RSS counts its parent's at fork.
        print("making the bundle (VAN-b0, 224, random weights seed 0, FP32)", file=sys.stderr)
        _, _, out = timed("import json\nfrom PIL import Image\nfrom skimage import data\n"
                          "from vanexport.ship.bundle import make_bundle\n"
                          f"Image.fromarray(data.chelsea()).save({str(photo)!r})\n"
                          f"r = make_bundle('b0', output={str(bundle_path)!r}, validate=False)\n"
                          "print(json.dumps({'size': r.size_bytes, 'files': {k: v['size'] for k, v in r.files.items()}}))",
                          dict(os.environ))
        bundle = json.loads(out)
        predict = BLOCK_TORCH + (
            "import sys\nfrom vanexport.cli import main\n"
            f"sys.argv = ['vanexport', 'predict', {str(photo)!r}, '--model', {str(bundle_path)!r}, '--json', '--topk', '1']\n"
            "main()\n")
        reference = (
            "import numpy as np, torch\nfrom PIL import Image\n"
            "from vanexport.model.factory import load_model\nfrom vanexport.data.preprocess import preprocess_image\n"
            "m, v, _ = load_model('b0', None, quiet=True)\n"
            f"x = torch.from_numpy(preprocess_image(Image.open({str(photo)!r}), v.preprocessing)[None])\n"
            "with torch.inference_mode():\n    print(int(m(x).argmax()))\n")
        runs = {"predict_first_run": [], "predict_warm_cache": [], "torch_reference": []}
        tops = set()
        for i in range(args.repeats):
            env = dict(os.environ, VANEXPORT_CACHE=str(tmp / f"cache{i}"))
            for name, code in (("predict_first_run", predict), ("predict_warm_cache", predict),
                               ("torch_reference", reference)):
                wall, rss, out = timed(code, env)
                runs[name].append({"wall_s": wall, "peak_rss_mib": rss})
                tops.add(json.loads(out)["predictions"][0]["top"][0]["index"] if name.startswith("predict")
                         else int(out))
            print(f"repeat {i + 1}: " + ", ".join(f"{k} {v[-1]['wall_s']:.2f} s" for k, v in runs.items()),
                  file=sys.stderr)
    summary = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "load_average_1min": os.getloadavg()[0]},
        "bundle": {"size_mb": bundle["size"] / 1e6, "files": bundle["files"]},
        "same_top1_everywhere": len(tops) == 1,
        "repeats": args.repeats,
        **{name: {"wall_s_median": statistics.median(r["wall_s"] for r in rs),
                  "wall_s_min": min(r["wall_s"] for r in rs), "wall_s_max": max(r["wall_s"] for r in rs),
                  "peak_rss_mib_median": statistics.median(r["peak_rss_mib"] for r in rs), "runs": rs}
           for name, rs in runs.items()},
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    for name in runs:
        s = summary[name]
        print(f"{name:<20} median {s['wall_s_median']:.2f} s (min {s['wall_s_min']:.2f}, max {s['wall_s_max']:.2f}), "
              f"peak RSS {s['peak_rss_mib_median']:.0f} MiB")
    print(f"bundle {summary['bundle']['size_mb']:.1f} MB; same top-1 in every run: {summary['same_top1_everywhere']}")


if __name__ == "__main__":
    main()
