"""`vanexport trt --bundle`: build the engine on the device itself, from the bundle's ONNX file.

Plans are not portable (platform, TensorRT version, GPU architecture), so a bundle ships ONNX files and the device
builds its own plan. The new plan is checked against the bundle's recorded ONNX outputs on the bundled check images
(no PyTorch, onnx or weights needed on the device) and only then added to the bundle, atomically, with the timing
cache of the build when it holds timings.
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
    from ..runtime.batching import batch_limits
    from ..runtime.tensorrt_backend import TensorRTBackend
    from ..trt.build import build_engine
    from .bundle import add_engine_to_bundle

    step = progress or (lambda msg: None)
    require_tensorrt(device)  # fail in one line before unpacking anything
    step(f"checking {bundle}")
    b = open_bundle(bundle)
    # weak typing lowers the FP32 graph with a builder flag (what DLA builds on TensorRT 10 use)
    weak_fp16 = settings.weak_typing and settings.precision == "fp16"
    b.onnx(settings.precision)  # the precision must be in the bundle: it is what the engine is checked against
    onnx = b.onnx("fp32" if weak_fp16 else settings.precision)
    with work_folder() as work:
        cache = work / "timing.cache"
        if b.timing_cache is not None and b.timing_cache.stat().st_size:
            shutil.copyfile(b.timing_cache, cache)  # reuse the timings of earlier builds on this kind of device
        built = build_engine(onnx, settings, output=plan_path(onnx, settings.precision, folder=work),
                             timing_cache=cache, validate=False, device=device, progress=step)
        step(f"checking the engine against the bundled {settings.precision.upper()} ONNX outputs")
        with TensorRTBackend(built.path, device=device) as backend:
            # the engine's batch range: a profile with a minimum above 1 gets its last chunk padded
            size, min_size = batch_limits(None, backend.profile)
            check = check_engine_against_bundle(b, backend, settings.precision, max_batch=size, min_batch=min_size)
        if not check["passed"]:
            raise ValidationFailed(f"the engine built on this device does not match the bundled ONNX: "
                                   f"{'; '.join(check['failures'])}; the bundle was not changed",
                                   "rebuild with --fp32 or another --opt-level, and report the numbers (--json)")
        # never an empty cache into the bundle (a build that timed nothing leaves the file as it was)
        new_cache = cache if cache.is_file() and cache.stat().st_size else None
        added = add_engine_to_bundle(bundle, built.path, timing_cache=new_cache, validation=check, progress=step)
    return {"bundle": str(bundle), "engine": Path(built.path).name, "precision": settings.precision,
            "build": built.to_dict(), "check": check, "bundle_result": added.to_dict()}
