"""The builder side of TensorRT: parse the ONNX file (naming each failing node), configure (Polygraphy's
CreateConfig, plus DLA placement), report build phases, and build the serialized plan.

Every function takes the imported `tensorrt` module as `trt` (see machine.import_tensorrt).
"""
from __future__ import annotations

from ..errors import VanexportError
from ..logs import quiet_polygraphy
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


def parse_onnx(trt, logger, onnx_path, flags: int):
    """(builder, network, parser) for Polygraphy's EngineBytesFromNetwork, or an error naming each bad node."""
    builder = create(trt, "Builder", logger)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse_from_file(str(onnx_path))
    if not ok or parser.num_errors:
        errors = [describe_parser_error(parser.get_error(i)) for i in range(parser.num_errors)]
        raise VanexportError(f"TensorRT {trt.__version__} cannot parse {onnx_path}: "
                             + ("; ".join(errors) or logger.last_error()),
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


def make_config(trt, options: dict, timing_cache=None, dla_core: int | None = None, monitor=None):
    """Polygraphy's CreateConfig (a loader called later with the builder and network), plus DLA placement.
    `monitor` (see progress_monitor) must outlive the build."""
    from polygraphy.backend.trt import CreateConfig, PostprocessConfig

    from .settings import resolve_options

    with quiet_polygraphy():
        config = CreateConfig(load_timing_cache=timing_cache, progress_monitor=monitor, **resolve_options(options, trt))
    if dla_core is None:
        return config

    def use_dla(builder, network, cfg):
        if dla_core >= builder.num_DLA_cores:
            raise VanexportError(f"no DLA core {dla_core} (this device has {builder.num_DLA_cores})",
                                 "drop --dla-core, or pick a core that exists (Jetson Orin/Xavier have 0 and 1)")
        cfg.default_device_type = trt.DeviceType.DLA
        cfg.DLA_core = dla_core
        cfg.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run go to the GPU

    return PostprocessConfig(config, use_dla)


def build_serialized(trt, logger, network, config, save_timing_cache=None) -> bytes:
    """Build the plan. `save_timing_cache` is a writable binary file; the cache is merged into it."""
    from polygraphy.backend.trt import EngineBytesFromNetwork
    from polygraphy.exception import PolygraphyException

    
    try:
        with quiet_polygraphy():
            data = EngineBytesFromNetwork(network, config=config, save_timing_cache=save_timing_cache)()
    except PolygraphyException as e:
        raise VanexportError(f"TensorRT {trt.__version__} failed to build the engine "
                             f"({logger.last_error(str(e).splitlines()[0])})",
                             "see `vanexport trt --debug`; try a smaller --max-batch or a larger --workspace") from e
    return bytes(data)
