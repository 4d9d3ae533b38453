"""The model files a benchmark runs, made once per variant on first use and kept in a work folder.

FP32 ONNX comes from `export_onnx`; FP16 and INT8 ONNX from `vanexport.export.precision` and TensorRT plans from
`vanexport.trt`, both imported only when a row needs them, so a build without them still benchmarks the rest and
says why a row was skipped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable


class Skipped(Exception):
    """This artifact cannot be made here; the message is the reason shown in the table."""


class Artifacts:
    def __init__(self, workdir: Path, variant: str, weights: str | None, *, num_classes: int | None, img_size: int,
                 seed: int, calib=None, num_calib: int = 256, max_batch: int = 1,
                 progress: Callable[[str], None] | None = None):
        self.workdir, self.variant, self.weights = Path(workdir), variant, weights
        self.num_classes, self.img_size, self.seed = num_classes, img_size, seed
        self.calib, self.num_calib, self.max_batch = calib, num_calib, max_batch
        self.step = progress or (lambda msg: None)
        self._made: dict[tuple, Path | Exception] = {}  # a failure is remembered, not retried for every batch

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
        return made

    def _name(self, suffix: str) -> Path:
        return self.workdir / f"van_{self.variant}_{self.img_size}{suffix}"

    def _onnx(self, precision: str) -> Path:
        if precision == "fp32":
            from ..export.onnx import export_onnx

            self.step(f"exporting VAN-{self.variant} to ONNX")
            # Validation is the benchmark's own fidelity check (same inputs as the timing), so not repeated here.
            return Path(export_onnx(self.variant, self.weights, num_classes=self.num_classes, img_size=self.img_size,
                                    output=self._name(".onnx"), validate=False, seed=self.seed).path)
        try:
            from ..export.precision import convert_fp16, quantize_int8
        except ImportError:
            raise Skipped(f"this vanexport has no {precision.upper()} conversion (vanexport.export.precision)") from None
        fp32 = self.get("onnx", "fp32")
        if precision == "fp16":
            self.step(f"converting VAN-{self.variant} to FP16")
            return Path(convert_fp16(fp32, output=self._name("_fp16.onnx")).path)
        if self.calib is None:
            raise Skipped("INT8 needs calibration images: pass --calib DIR")
        self.step(f"quantizing VAN-{self.variant} to INT8 ({self.num_calib} calibration images)")
        return Path(quantize_int8(fp32, self.calib, output=self._name("_int8.onnx"), num_calib=self.num_calib).path)

    def _plan(self, precision: str) -> Path:
        try:
            from ..trt.build import build_engine
            from ..trt.settings import BuildSettings
        except ImportError:
            raise Skipped("this vanexport has no TensorRT engine builder (vanexport.trt.build)") from None
        onnx_path = self.get("onnx", precision)
        self.step(f"building a TensorRT {precision.upper()} engine for VAN-{self.variant} (batch 1..{self.max_batch})")
        settings = BuildSettings(precision=precision, min_batch=1, opt_batch=self.max_batch, max_batch=self.max_batch)
        # Not validated at build time: the benchmark checks every row against PyTorch on its own inputs.
        return Path(build_engine(onnx_path, settings, output=self._name(f"_{precision}.plan"),
                                 timing_cache=self.workdir / "timing.cache", validate=False).path)
