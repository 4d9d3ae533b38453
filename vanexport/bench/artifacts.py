"""The model files a benchmark runs, made once per variant on first use (through the pipeline) in a work folder.

Rows that need a file which cannot be made here (no calibration images, no TensorRT) are skipped with the reason;
a file that failed to be made fails its rows, not the benchmark.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..formats.names import CPU_INT8_TAG


class Skipped(Exception):
    """This artifact cannot be made here; the message is the reason shown in the table."""


class Artifacts:
    def __init__(self, workdir: Path, source, *, img_size: int, calib=None, num_calib: int | None = None,
                 max_batch: int = 1, progress: Callable[[str], None] | None = None):
        """`source`: the pipeline.ModelSource of the variant (loaded once, shared with the PyTorch reference)."""
        self.workdir, self.source = Path(workdir), source
        self.img_size, self.calib, self.num_calib, self.max_batch = img_size, calib, num_calib, max_batch
        self.step = progress or (lambda msg: None)
        self._made: dict[tuple, object] = {}  # a failure is remembered, not retried for every batch

    def get(self, kind: str, precision: str) -> Path:
        """The file for ("onnx" | "plan", precision); raises Skipped, or the error that made it fail."""
        key = (kind, precision)
        if key not in self._made:
            try:
                self._made[key] = self._plan(precision) if kind == "plan" else self._onnx(precision)
            except Exception as e:  # Skipped, VanexportError or a converter's own error: the row's reason
                self._made[key] = e
        made = self._made[key]
        if isinstance(made, Exception):
            raise made
        return Path(made.path)

    def _artifact(self, kind: str, precision: str):
        self.get(kind, precision)
        return self._made[(kind, precision)]

    def _onnx(self, precision: str):
        from ..pipeline import ensure_onnx, ensure_precision

        variant = self.source.load()[1].name
        if precision == "fp32":
            self.step(f"exporting VAN-{variant} to ONNX")
            # Validation is the benchmark's own fidelity check (same inputs as the timing), so not repeated here.
            return ensure_onnx(self.source, self.workdir / f"van_{variant}_{self.img_size}.onnx",
                               img_size=self.img_size, validate=False)[0]
        if precision == "int8" and self.calib is None:
            raise Skipped("INT8 needs calibration images: pass --calib DIR")
        fp32 = self._artifact("onnx", "fp32")
        if precision == CPU_INT8_TAG:
            return self._cpu_int8(fp32, variant)
        self.step(f"converting VAN-{variant} to {precision.upper()}")
        # not checked here either: every row's fidelity is measured on the benchmark's own images
        return ensure_precision(fp32, precision, calib=self.calib, num_calib=self.num_calib, validate=False,
                                progress=self.step)[0]

    def _cpu_int8(self, fp32, variant: str):
        """The INT8 file made for the CPU (precision/int8_cpu.py), from the same FP32 file and calibration images."""
        from ..precision.int8_cpu import quantize_int8_cpu

        self.step(f"converting VAN-{variant} to INT8 for the CPU (NNCF)")
        # not checked here: every row's fidelity is measured on the benchmark's own images
        return quantize_int8_cpu(fp32.path, self.calib, Path(fp32.path).with_name(
            f"{Path(fp32.path).stem}_{CPU_INT8_TAG}.onnx"), num_calib=self.num_calib, validate=False,
            progress=self.step)

    def _plan(self, precision: str):
        from ..pipeline import ensure_plan
        from ..trt.settings import BuildSettings

        onnx = self._artifact("onnx", precision)
        self.step(f"building a TensorRT {precision.upper()} engine (batch 1..{self.max_batch})")
        settings = BuildSettings(precision=precision, min_batch=1, opt_batch=self.max_batch, max_batch=self.max_batch)
        # Not validated at build time: the benchmark checks every row against PyTorch on its own inputs.
        return ensure_plan(onnx, settings, timing_cache=self.workdir / "timing.cache", validate=False)[0]
