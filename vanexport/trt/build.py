"""ONNX -> TensorRT plan + manifest, checked against PyTorch before either file is written."""
from __future__ import annotations

import contextlib
import datetime
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import ValidationFailed, VanexportError
from ..files import atomic_output, check_output_path, sha256_file
from ..formats.engine_manifest import (BuildRecord, EngineManifest, PlanFile, SourceOnnx, TensorRTInfo, manifest_path,
                                       write_manifest)
from ..formats.names import plan_path as default_plan_path
from .settings import BuildSettings, config_options, network_flags, typing_mode

AUTO = "auto"  # timing cache beside the plan
TIMING_CACHE_NAME = "timing.cache"


@dataclass
class EngineResult:
    path: str
    sha256: str
    manifest_path: str
    manifest: dict
    reused: bool
    seconds: dict
    validation: dict | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def timing_cache_path(plan_path, timing_cache) -> Path | None:
    if timing_cache == AUTO:
        return Path(plan_path).parent / TIMING_CACHE_NAME
    return Path(timing_cache) if timing_cache else None


def check_source_precision(meta_precision: str, settings: BuildSettings) -> None:
    """Strong typing builds exactly the precision in the ONNX file; weak typing (TensorRT 10) lowers an FP32 graph
    to FP16 with a builder flag, or runs a Q/DQ graph with INT8 enabled."""
    needed = "fp32" if settings.weak_typing and settings.precision == "fp16" else settings.precision
    if meta_precision != needed:
        raise VanexportError(f"the ONNX file is {meta_precision.upper()} but a {settings.precision.upper()} engine "
                             f"{'with weak typing ' if settings.weak_typing else ''}needs a {needed.upper()} ONNX file",
                             "let `vanexport trt --fp16/--int8` convert it, or pass the matching ONNX file")


def build_engine(onnx_path, settings: BuildSettings | None = None, output=None, *, timing_cache=AUTO,
                 validate: bool = True, weights: str | None = None, images: str | None = None, device: int = 0,
                 reference=None, progress: Callable[[str], None] | None = None) -> EngineResult:
    """Build a TensorRT plan from an ONNX file made by vanexport, write its manifest beside it, and check it
    against the PyTorch reference (`reference`, when the caller has it loaded; else rebuilt from the metadata).
    Nothing is written unless every step (validation included) succeeds.

    `timing_cache`: "auto" (engines/timing.cache beside the plan), a path, or None for none. It is read before
    and written after the build (TensorRT merges new timings into it).
    """
    from ..formats.onnx_metadata import read_metadata

    step = progress or (lambda msg: None)
    settings = settings or BuildSettings()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise VanexportError(f"model file '{onnx_path}' not found", "pass an .onnx file made by `vanexport onnx`")
    meta = read_metadata(onnx_path)
    check_source_precision(meta.precision, settings)
    shapes = settings.profile_shapes(meta.input_shape, meta.img_size)
    out = Path(output) if output else default_plan_path(onnx_path, settings.precision)
    if output:
        check_output_path(out)
    cache = timing_cache_path(out, timing_cache)
    if cache is not None and timing_cache != AUTO:
        check_output_path(cache)

    from ..machine import AMPERE, require_tensorrt, tensorrt_version
    from ..runtime import tensorrt_engine as trt_engine
    from . import builder

    trt, gpu = require_tensorrt(device)
    mode = typing_mode(trt, settings)
    if settings.hw_compat == "ampere+" and gpu.cc < AMPERE:
        raise VanexportError(f"--hw-compat ampere+ needs an Ampere or newer GPU to build on; this {gpu.name} has "
                             f"compute capability {gpu.compute_capability}",
                             "build on an Ampere or newer GPU, or drop --hw-compat")
    out.parent.mkdir(parents=True, exist_ok=True)  # the default engines/ folder, now that the build can happen
    check_output_path(out)
    version = tensorrt_version(trt)
    logger = trt_engine.collecting_logger(trt)
    t0 = time.perf_counter()
    step(f"parsing {onnx_path} with TensorRT {version} "
         f"({'strongly typed' if mode == 'strong' else 'weak typing: ' + settings.precision.upper() + ' builder flag'})")
    network = builder.parse_onnx(trt, logger, onnx_path, network_flags(trt, mode))
    t_parse = time.perf_counter()

    step(f"building the {settings.precision.upper()} engine on {gpu.name} (batch {shapes['min'][0]}..{shapes['max'][0]}, "
         f"opt {shapes['opt'][0]}; timing cache {cache or 'off'})")
    with contextlib.ExitStack() as stack:
        cache_in = stack.enter_context(open(cache, "rb")) if cache is not None and cache.is_file() else None
        monitor = builder.progress_monitor(trt, step) if progress else None
        config = builder.make_config(trt, config_options(settings, shapes, meta.input_name, mode), cache_in,
                                        settings.dla_core, monitor)
        if cache is None:
            plan_bytes = builder.build_serialized(trt, logger, network, config)
        else:
            with atomic_output(cache) as tmp_cache, open(tmp_cache, "w+b") as cache_out:
                plan_bytes = builder.build_serialized(trt, logger, network, config, save_timing_cache=cache_out)
    t_build = time.perf_counter()
    runtime, engine = trt_engine.deserialize(trt, logger, plan_bytes, host_code=settings.version_compatible,
                                             dla_core=settings.dla_core)
    inputs, outputs = trt_engine.engine_io(trt, engine)
    del engine, runtime

    report = None
    with atomic_output(out) as tmp_plan:
        tmp_plan.write_bytes(plan_bytes)
        manifest = EngineManifest(
            plan=PlanFile(out.name, sha256_file(tmp_plan), len(plan_bytes)),
            source_onnx=SourceOnnx(str(onnx_path), sha256_file(onnx_path), meta.precision),
            tensorrt=TensorRTInfo(version, settings.version_compatible, settings.hw_compat, mode, settings.dla_core),
            gpu=gpu, precision=settings.precision, inputs=inputs, outputs=outputs,
            preprocessing=meta.preprocessing, num_classes=meta.num_classes, model=asdict(meta),
            build=BuildRecord(settings.to_dict(), str(cache) if cache else None, round(t_build - t0, 3),
                              datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")),
            vanexport_version=__version__)
        if validate:
            step("validating against PyTorch (TensorRT on the GPU, PyTorch on the CPU)")
            from ..check.validate import validate_plan

            report = validate_plan(tmp_plan, weights=weights, images=images, manifest=manifest, device=device,
                                   reference=reference)
            if not report.passed:
                raise ValidationFailed(f"the engine does not match PyTorch: {'; '.join(report.failures)}; "
                                       "nothing was written",
                                       "--no-validate writes it anyway (then `vanexport validate PLAN` shows the numbers)")
            manifest.validation = {"passed": True, "tolerance": report.tolerance, "overall": report.overall}
        write_manifest(manifest, manifest_path(out))
    t_end = time.perf_counter()
    seconds = {"parse": t_parse - t0, "build": t_build - t_parse, "validate": t_end - t_build, "total": t_end - t0}
    return EngineResult(str(out), manifest.plan.sha256, str(manifest_path(out)), manifest.to_dict(), False,
                        {k: round(v, 3) for k, v in seconds.items()}, report.to_dict() if report else None,
                        logger.warnings[-5:])
