"""What artifacts are called: precisions, file suffixes, the default folder, and names that say what a file holds."""
from __future__ import annotations

from pathlib import Path

PRECISIONS = ("fp32", "fp16", "int8")  # the precisions an ONNX file or a plan is made in
# Precisions a backend computes an FP32 file in, not files of their own: OpenVINO's BF16, where the CPU has it.
RUNTIME_PRECISIONS = ("bf16",)
# The INT8 files, by the runtime whose kernels they are laid out for: "tensorrt" (Q/DQ on Conv/Gemm/MatMul inputs,
# what TensorRT's strongly typed builds take) and "cpu" (NNCF's quantizers, placed for OpenVINO's CPU kernels).
INT8_FORMS = ("tensorrt", "cpu")
CPU_INT8_TAG = "int8_cpu"  # the name part of a CPU INT8 file: van_b0_224_int8_cpu.onnx
DEFAULT_FOLDER = Path("engines")
PLAN_SUFFIXES = (".plan", ".engine", ".trt")
BUNDLE_SUFFIXES = (".tar.gz", ".tgz")


_TASK_PREFIX = {"segment-fpn": "fpn_", "segment-upernet": "upernet_", "features": "features_"}


def model_stem(variant: str, img_size: int, batch: int | None = None, dynamic_hw: bool = False,
               task: str = "classify") -> str:
    """van_b0_224 (dynamic batch), van_b0_224_bs4 (static batch), van_b0_dynhw (dynamic height and width);
    a dense model's task first: fpn_van_b0_512, upernet_van_b0_512."""
    return (_TASK_PREFIX.get(task, "") + f"van_{variant}_" + ("dynhw" if dynamic_hw else str(img_size))
            + (f"_bs{batch}" if batch else ""))


def with_precision(stem: str, precision: str) -> str:
    """van_b0_224 -> van_b0_224_fp16; an FP32 name stays as it is."""
    return stem if precision == "fp32" else f"{stem}_{precision}"


def converted_path(onnx_path, precision: str) -> Path:
    """engines/van_b0_224.onnx -> engines/van_b0_224_fp16.onnx / engines/van_b0_224_int8.onnx (`precision` may be
    CPU_INT8_TAG: van_b0_224_int8_cpu.onnx)."""
    p = Path(onnx_path)
    return p.with_name(f"{p.stem}_{precision}{p.suffix or '.onnx'}")


def plan_path(onnx_path, precision: str, folder: Path = DEFAULT_FOLDER) -> Path:
    """engines/van_b0_224_fp16.onnx -> engines/van_b0_224_fp16.plan; an FP32 ONNX gets _fp32 (or _fp16 when it is
    built with weak typing) so the plan's name always says its precision."""
    stem = Path(onnx_path).stem
    if not stem.endswith(f"_{precision}"):
        stem += f"_{precision}"
    return Path(folder) / f"{stem}.plan"


def kind_of(path) -> str | None:
    """"onnx", "plan" or "bundle" by the file name; None when the name says nothing."""
    name = Path(path).name.lower()
    if name.endswith(".onnx"):
        return "onnx"
    if name.endswith(PLAN_SUFFIXES):
        return "plan"
    if name.endswith(BUNDLE_SUFFIXES):
        return "bundle"
    return None
