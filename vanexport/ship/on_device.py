"""`vanexport trt --bundle`: build the engine on the device itself, from the bundle's ONNX file.

Plans are not portable (TensorRT version, GPU architecture), so a bundle ships ONNX files and the device builds its
own plan. The new plan is checked against the bundle's recorded ONNX outputs on the bundled check images (no
PyTorch or weights needed on the device) and only then added to the bundle, atomically.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from ..errors import ValidationFailed
from ..files import work_folder


def build_into_bundle(bundle, settings, *, device: int = 0, progress: Callable[[str], None] | None = None) -> dict:
    """Build a `settings.precision` engine from `bundle`'s ONNX file of that precision, check it, add it."""
    from ..device.bundle import check_engine_against_bundle, open_bundle
    from ..formats.names import plan_path
    from ..machine import require_tensorrt
    from ..runtime.tensorrt_backend import TensorRTBackend
    from ..trt.build import build_engine
    from .bundle import add_engine_to_bundle

    step = progress or (lambda msg: None)
    require_tensorrt(device)  # fail in one line before unpacking anything
    step(f"checking {bundle}")
    b = open_bundle(bundle)
    onnx = b.onnx(settings.precision)
    with work_folder() as work:
        cache = work / "timing.cache"
        if b.timing_cache is not None:
            shutil.copyfile(b.timing_cache, cache)  # reuse the timings of earlier builds on this kind of device
        built = build_engine(onnx, settings, output=plan_path(onnx, settings.precision, folder=work),
                             timing_cache=cache, validate=False, device=device, progress=step)
        step(f"checking the engine against the bundled {settings.precision.upper()} ONNX outputs")
        backend = TensorRTBackend(built.path, device=device)
        check = check_engine_against_bundle(b, backend, settings.precision, max_batch=backend.profile.max[0],
                                            min_batch=backend.profile.min[0])
        del backend
        if not check["passed"]:
            raise ValidationFailed(f"the engine built on this device does not match the bundled ONNX: "
                                   f"{'; '.join(check['failures'])}; the bundle was not changed",
                                   "rebuild with --fp32 or another --opt-level, and report the numbers (--json)")
        added = add_engine_to_bundle(bundle, built.path, timing_cache=cache, validation=check, progress=step)
    return {"bundle": str(bundle), "engine": Path(built.path).name, "precision": settings.precision,
            "build": built.to_dict(), "check": check, "bundle_result": added.to_dict()}
