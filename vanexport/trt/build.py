"""ONNX -> TensorRT plan + manifest, checked against PyTorch before either file is written."""
from __future__ import annotations

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
from .settings import (BuildSettings, config_options, default_workspace_bytes, dla_problem, hw_compat_problem,
                       network_flags, typing_mode)

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
    the build when it was made by this TensorRT on this compute capability, and written after it unless empty.
    `device`: the CUDA device that builds (and so the one the plan is tuned for).
    """
    from ..formats.onnx_wire import metadata_from_file

    step = progress or (lambda msg: None)
    settings = settings or BuildSettings()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise VanexportError(f"model file '{onnx_path}' not found", "pass an .onnx file made by `vanexport onnx`")
    meta = metadata_from_file(onnx_path)  # without the onnx package: a device builds too
    check_source_precision(meta.precision, settings)
    shapes = settings.profile_shapes(meta.input_shape, meta.img_size)
    out = Path(output) if output else default_plan_path(onnx_path, settings.precision)
    if output:
        check_output_path(out)
    cache = timing_cache_path(out, timing_cache)
    if cache is not None and timing_cache != AUTO:
        check_output_path(cache)

    from ..machine import available_memory_bytes, host_platform, require_tensorrt, tensorrt_version
    from ..runtime import cuda
    from ..runtime import tensorrt_engine as trt_engine
    from . import builder
    from .timing_cache import CacheKey, read_cache, write_cache

    trt, gpu = require_tensorrt(device)
    mode = typing_mode(trt, settings)
    version = tensorrt_version(trt)
    where = host_platform()
    for problem in (hw_compat_problem(trt, settings, gpu),
                    dla_problem(version, gpu, where.system) if settings.dla_core is not None else None):
        if problem:
            raise VanexportError(*problem)
    out.parent.mkdir(parents=True, exist_ok=True)  # the default engines/ folder, now that the build can happen
    check_output_path(out)
    notes: list[str] = []
    workspace = None if settings.workspace_gib is not None else \
        default_workspace_bytes(gpu.integrated, available_memory_bytes())
    if workspace is not None:
        notes.append(f"{gpu.name} is an integrated GPU (its memory is the system's): workspace capped at "
                     f"{workspace / 2**20:.0f} MiB (--workspace sets it)")
    key = CacheKey(version, gpu.compute_capability, gpu.name)
    cache_data, cache_note = read_cache(cache, key) if cache is not None else (b"", None)
    notes += [cache_note] if cache_note else []
    t0 = time.perf_counter()
    with cuda.Device(device), trt_engine.capture(trt) as log:  # TensorRT builds on the current device
        typing = "strongly typed" if mode == "strong" else f"weak typing: {settings.precision.upper()} builder flag"
        step(f"parsing {onnx_path} with TensorRT {version} ({typing})")
        trt_builder, network, parser = builder.parse_onnx(trt, log, onnx_path, network_flags(trt, mode))
        t_parse = time.perf_counter()
        step(f"building the {settings.precision.upper()} engine on {gpu.name} (device {device}; batch "
             f"{shapes['min'][0]}..{shapes['max'][0]}, opt {shapes['opt'][0]}; timing cache {cache or 'off'})")
        monitor = builder.progress_monitor(trt, step) if progress else None
        config = builder.configure(trt, trt_builder, network, config_options(settings, shapes, meta.input_name, mode,
                                                                            workspace), monitor)
        timing, note = builder.attach_timing_cache(trt, config, cache_data, log)
        notes += [f"{cache}: {note}"] if note else []
        plan_bytes = builder.build_serialized(trt, log, trt_builder, network, config)
        cache_bytes, cache_empty = builder.timing_cache_bytes(config)
        del timing, config, network, parser, trt_builder
        t_build = time.perf_counter()
        runtime, engine = trt_engine.deserialize(trt, log, plan_bytes, host_code=settings.version_compatible,
                                                 dla_core=settings.dla_core)
        inputs, outputs = trt_engine.engine_io(trt, engine)
        placement = dla_check(trt, engine, settings.dla_core) if settings.dla_core is not None else None
        del engine, runtime
        warnings = log.warnings[-5:]
    if placement and placement["gpu"]:
        notes.append(f"DLA core {settings.dla_core} runs {placement['dla']} subgraph(s); {placement['gpu']} "
                     "layer(s) run on the GPU")
    if cache is not None and not write_cache(cache, cache_bytes, key, cache_empty):
        notes.append(f"the build left no timings: {cache} was not written")

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
                              datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                              workspace, placement),
            vanexport_version=__version__, platform=where)
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
                        notes + warnings)


def dla_check(trt, engine, core: int) -> dict:
    """Where the built engine's layers run (from the engine inspector); refuses a "DLA" engine whose every layer
    fell back to the GPU (TensorRT does that silently, e.g. for a dynamic profile or an FP32 network)."""
    from ..runtime import tensorrt_engine as trt_engine

    placement = trt_engine.dla_placement(trt_engine.engine_layers(trt, engine))
    if not placement["dla"]:
        raise VanexportError(f"TensorRT placed no layer on DLA core {core}: all {placement['gpu']} layers fell back "
                             "to the GPU; nothing was written",
                             "on TensorRT 10 build for DLA with --weak-typing --fp16 (or --int8); check the profile "
                             "is static and see `vanexport trt --debug`")
    return placement
