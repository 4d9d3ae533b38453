"""What this machine has, and what that means for each command."""
from __future__ import annotations

import importlib.metadata
import platform

PACKAGES = ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxsim", "onnxscript", "polygraphy", "tensorrt",
            "nvidia-modelopt", "numpy", "pillow", "click", "rich", "tritonclient")
# What each command needs beyond numpy/click. A command is usable when all of these are present.
NEEDS = {
    "onnx": ("torch", "onnx", "onnxruntime|onnxruntime-gpu", "onnxsim", "polygraphy"),
    "validate": ("torch", "onnx", "onnxruntime|onnxruntime-gpu", "polygraphy"),
    "fp16": ("onnx", "onnxruntime|onnxruntime-gpu"),
    "quantize": ("onnx", "onnxruntime|onnxruntime-gpu", "pillow"),
    "sensitivity": ("onnx", "onnxruntime|onnxruntime-gpu", "pillow"),
    "trt": ("torch", "onnx", "polygraphy", "tensorrt"),  # and a CUDA GPU with its driver
    "inspect": ("onnx",),  # TensorRT only for a plan's per-layer table
    "bundle": ("torch", "onnx", "onnxruntime|onnxruntime-gpu", "polygraphy"),
    "unpack": (),
    "predict": ("onnxruntime|onnxruntime-gpu|tensorrt", "pillow"),  # no torch: what a device needs
    "triton": ("tritonclient",),  # Triton's model-config schema
    "deepstream": ("onnx",),
    "bench": ("torch", "onnx", "onnxruntime|onnxruntime-gpu", "onnxsim"),
    "info": (),
}


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    if out["tensorrt"] is None:  # JetPack installs TensorRT without pip metadata
        try:
            import tensorrt  # noqa: F401

            out["tensorrt"] = tensorrt.__version__
        except Exception:
            pass
    return out


def gpus() -> list[dict]:
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out.append({"index": i, "name": p.name, "compute_capability": f"{p.major}.{p.minor}",
                    "memory_gib": round(p.total_memory / 2**30, 1)})
    return out


def ort_providers() -> list[str]:
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except Exception:
        return []


def environment_info() -> dict:
    versions = package_versions()
    problems = []
    if versions["onnxruntime"] and versions["onnxruntime-gpu"]:
        problems.append("onnxruntime and onnxruntime-gpu are both installed and share one folder: "
                        "uninstall both, then install only one")
    commands = {}
    for cmd, needs in NEEDS.items():
        missing = [n.split("|")[0] for n in needs if not any(versions.get(alt) for alt in n.split("|"))]
        commands[cmd] = {"ok": not missing, "missing": missing}
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "packages": versions,
        "onnxruntime_providers": ort_providers(),
        "gpus": gpus(),
        "commands": commands,
        "problems": problems,
    }
