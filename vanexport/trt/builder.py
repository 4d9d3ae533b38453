"""The builder side of TensorRT, on its documented API (no Polygraphy: a device builds too, and the timing cache
needs handling Polygraphy's loaders do not give): parse the ONNX file (naming each failing node), configure
(profile, flags, memory, compatibility, DLA), the timing cache (loaded strictly, saved only when not empty),
report build phases, and build the serialized plan.

Every function takes the imported `tensorrt` module as `trt` (see machine.import_tensorrt) and a
`tensorrt_engine.Capture` as `log`.
"""
from __future__ import annotations

from ..errors import VanexportError
from ..runtime.tensorrt_engine import create, member_name


def describe_parser_error(error) -> str:
    """One parser error (nvonnxparser IParserError) as 'node 12 'name' (Op): description [CODE]'."""

    def get(method):
        try:
            return getattr(error, method)()
        except Exception:  # an accessor this TensorRT lacks
            return None

    desc = get("desc")
    if desc is None:
        return str(error).strip()
    node, node_name, op, code = get("node"), get("node_name"), get("node_operator"), get("code")
    where = "model"
    if node is not None and node >= 0:
        where = f"node {node}" + (f" '{node_name}'" if node_name else "") + (f" ({op})" if op else "")
    return f"{where}: {str(desc).strip()}" + (f" [{member_name(code)}]" if code is not None else "")


def parse_onnx(trt, log, onnx_path, flags: int):
    """(builder, network, parser), or an error naming each bad node. The parser must outlive the network (it
    owns the weights), so the three are kept together. Make the CUDA device current first."""
    builder = create(trt, "Builder", log)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, log.logger)
    ok = parser.parse_from_file(str(onnx_path))
    if not ok or parser.num_errors:
        errors = [describe_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
        raise VanexportError(f"TensorRT {trt.__version__} cannot parse {onnx_path}: "
                             + ("; ".join(errors) or log.last_error()),
                             "check the ONNX file with `vanexport inspect`; re-export at --opset 17 or newer")
    return builder, network, parser


def progress_monitor(trt, report):
    """A trt.IProgressMonitor that reports each top-level build phase (builds take minutes on a Jetson)."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            if parent_phase is None:
                report(f"TensorRT: {phase_name}")

        def step_complete(self, phase_name, step):
            return True  # never cancel

        def phase_finish(self, phase_name):
            pass

    return Monitor()


def configure(trt, builder, network, options: dict, monitor=None):
    """An IBuilderConfig from `settings.config_options` (`monitor`, see progress_monitor, must outlive the build).

    ProfilingVerbosity.DETAILED: the engine inspector's per-layer table (`inspect`, DLA placement) needs it.
    """
    config = builder.create_builder_config()
    p = options["profile"]
    profile = builder.create_optimization_profile()
    profile.set_shape(p["input"], p["min"], p["opt"], p["max"])
    config.add_optimization_profile(profile)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if not options.get("tf32") and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default in TensorRT
    if "workspace_bytes" in options:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options["workspace_bytes"]))
    if "builder_optimization_level" in options:
        config.builder_optimization_level = int(options["builder_optimization_level"])
    if "hardware_compatibility_level" in options:  # checked to exist before the build (settings.hw_compat_problem)
        config.hardware_compatibility_level = getattr(trt.HardwareCompatibilityLevel,
                                                      options["hardware_compatibility_level"])
    if options.get("version_compatible"):
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    for flag in options.get("precision_flags", ()):  # weak typing (TensorRT 10)
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if monitor is not None:
        config.progress_monitor = monitor
    if options.get("dla_core") is not None:
        use_dla(trt, builder, network, config, options["dla_core"])
    return config


def use_dla(trt, builder, network, config, core: int) -> None:
    """Place the network on DLA core `core`, the layers it cannot run on the GPU; refuse, before the build, a
    network of which TensorRT says no layer can run on the DLA (where they land is checked after the build)."""
    if core >= builder.num_DLA_cores:
        raise VanexportError(f"no DLA core {core} (this device has {builder.num_DLA_cores})",
                             "drop --dla-core, or pick a core that exists (Jetson AGX Orin/Xavier have 0 and 1)")
    config.default_device_type = trt.DeviceType.DLA
    config.DLA_core = core
    config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run go to the GPU
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    on_dla = sum(1 for layer in layers if config.can_run_on_DLA(layer))
    if not on_dla:
        raise VanexportError(f"no layer of this network can run on DLA core {core} (all {len(layers)} would fall "
                             "back to the GPU)", "drop --dla-core; on TensorRT 10, DLA needs --fp16 or --int8 "
                             "(with --weak-typing, as DeepStream and trtexec build for DLA)")


def attach_timing_cache(trt, config, data: bytes, log) -> tuple[object, str | None]:
    """Give `config` a timing cache made from `data` (b"": a new one), checked strictly: a cache from another
    device or TensorRT is not used (set_timing_cache(..., ignore_mismatch=False) returns False), nor one TensorRT
    cannot read. (the cache, a note when `data` was not used). Keep the cache alive until the build is done."""
    note = None
    cache = None
    if data:
        errors_before = len(log.errors)
        try:
            cache = config.create_timing_cache(data)
        except (RuntimeError, TypeError, ValueError):
            cache = None
        # UNVERIFIED: whether a corrupt blob gives None or an empty cache; both come with ERROR lines, the first
        # saying why ("... Magic tag does not match"), then "4: The timing cache will not be used!" (TensorRT#3566)
        if cache is None or len(log.errors) > errors_before:
            why = log.errors[errors_before] if len(log.errors) > errors_before else "no error message"
            cache, note = None, f"the timing cache is not readable by TensorRT {trt.__version__} ({why})"
        elif not config.set_timing_cache(cache, False):
            cache, note = None, "the timing cache was made on another GPU or TensorRT version: not used"
    if cache is None:
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, False)
    return cache, note


def timing_cache_bytes(config) -> tuple[bytes, bool]:
    """(the build's timing cache, serialized; whether it holds no timings). Empty is told by the keys where
    TensorRT can list them (10.8+), else by comparing with the serialization of a new, empty cache (its length
    is not documented: UNVERIFIED, so no fixed size is assumed)."""
    cache = config.get_timing_cache()
    if cache is None:
        return b"", True
    data = bytes(cache.serialize())
    if hasattr(cache, "queryKeys"):
        return data, len(cache.queryKeys()) == 0
    blank = bytes(config.create_timing_cache(b"").serialize())
    return data, len(data) <= len(blank)


def build_serialized(trt, log, builder, network, config) -> bytes:
    """Build the plan: the bytes of the serialized engine, or one error line with TensorRT's own reason."""
    try:
        data = builder.build_serialized_network(network, config)
    except (RuntimeError, TypeError) as e:  # a binding failure instead of a None return
        data, failure = None, str(e).splitlines()[0] if str(e).strip() else type(e).__name__
    else:
        failure = "no error message"
    if data is None:
        raise VanexportError(f"TensorRT {trt.__version__} failed to build the engine ({log.last_error(failure)})",
                             "see `vanexport trt --debug`; try a smaller --max-batch or a larger --workspace")
    return bytes(data)
