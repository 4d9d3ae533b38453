"""The thin layer that calls TensorRT: parse, configure, build, deserialize, describe.

Every function takes the imported `tensorrt` module as `trt` (see environment.import_tensorrt). Polygraphy's
loaders do the builder configuration (CreateConfig: profiles, timing cache, optimization level, compatibility)
and the build (EngineBytesFromNetwork, which also merges and saves the timing cache). The ONNX parser is driven
directly because Polygraphy only logs its errors; here each failing node is named in the error.
"""
from __future__ import annotations

import json

from ..errors import VanexportError

# trt.DataType member name -> numpy-style name (the manifest speaks numpy)
DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
          "INT64": "int64", "BOOL": "bool", "UINT8": "uint8", "FP8": "float8e4m3", "INT4": "int4"}
# Tokens of the engine inspector's "Format/Datatype" (TensorRT 10) or "Datatype" (11) -> short precision names
_PRECISION_TOKENS = {"FP32": "fp32", "FLOAT": "fp32", "FP16": "fp16", "HALF": "fp16", "BF16": "bf16", "INT8": "int8",
                     "INT32": "int32", "INT64": "int64", "BOOL": "bool", "UINT8": "uint8", "FP8": "fp8", "INT4": "int4"}


def member_name(value) -> str:
    """'FLOAT' for trt.DataType.FLOAT (pybind11 enums have .name; str() gives 'DataType.FLOAT')."""
    return getattr(value, "name", None) or str(value).rsplit(".", 1)[-1]


def collecting_logger(trt):
    """A trt.ILogger that keeps errors and warnings, so a failure can be explained in one line."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.warnings: list[str] = []

        def log(self, severity, msg):
            kind = member_name(severity)
            if kind in ("INTERNAL_ERROR", "ERROR"):
                self.errors.append(str(msg).strip())
            elif kind == "WARNING":
                self.warnings.append(str(msg).strip())

        def last_error(self, default: str = "no error message") -> str:
            return self.errors[-1] if self.errors else default

    return Logger()


def create(trt, factory: str, logger):
    """trt.Builder or trt.Runtime. Without a usable GPU TensorRT logs "CUDA initialization failure" and the
    binding then raises a TypeError (nullptr); both become one VanexportError."""
    try:
        obj = getattr(trt, factory)(logger)
    except (TypeError, RuntimeError):
        obj = None
    if obj is None:
        raise VanexportError(f"TensorRT {trt.__version__} cannot create its {factory} "
                             f"({logger.last_error('CUDA initialization failure')})",
                             "check `nvidia-smi` and that the driver is new enough for this TensorRT's CUDA version")
    return obj


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

    from ..validate import _quiet_polygraphy
    from .settings import resolve_options

    with _quiet_polygraphy():
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

    from ..validate import _quiet_polygraphy

    try:
        with _quiet_polygraphy():
            data = EngineBytesFromNetwork(network, config=config, save_timing_cache=save_timing_cache)()
    except PolygraphyException as e:
        raise VanexportError(f"TensorRT {trt.__version__} failed to build the engine "
                             f"({logger.last_error(str(e).splitlines()[0])})",
                             "see `vanexport trt --debug`; try a smaller --max-batch or a larger --workspace") from e
    return bytes(data)


def deserialize(trt, logger, data: bytes, *, host_code: bool = False, dla_core: int | None = None):
    """(runtime, engine). The runtime is returned too: it must outlive the engine."""
    runtime = create(trt, "Runtime", logger)
    if host_code and hasattr(runtime, "engine_host_code_allowed"):
        runtime.engine_host_code_allowed = True  # version-compatible plans carry their lean runtime
    if dla_core is not None:
        runtime.DLA_core = dla_core
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise VanexportError(f"TensorRT {trt.__version__} cannot load the plan ({logger.last_error()})",
                             "rebuild it on this machine with `vanexport trt`")
    return runtime, engine


def engine_io(trt, engine) -> tuple[list[dict], list[dict]]:
    """Inputs (with their profile-0 shapes) and outputs: name, dtype, shape (-1 for dynamic axes)."""
    inputs, outputs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        entry = {"name": name, "dtype": DTYPES.get(member_name(engine.get_tensor_dtype(name)), "unknown"),
                 "shape": [int(d) for d in engine.get_tensor_shape(name)]}
        if member_name(engine.get_tensor_mode(name)) == "INPUT":  # TensorIOMode.INPUT
            lo, opt, hi = engine.get_tensor_profile_shape(name, 0)
            entry["profile"] = {"min": [int(d) for d in lo], "opt": [int(d) for d in opt], "max": [int(d) for d in hi]}
            inputs.append(entry)
        else:
            outputs.append(entry)
    return inputs, outputs


def engine_layers(trt, engine) -> list[dict]:
    """The engine inspector's per-layer table (needs ProfilingVerbosity.DETAILED at build time for full rows)."""
    inspector = engine.create_engine_inspector()
    return layer_rows(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def layer_rows(info_json: str) -> list[dict]:
    """Rows (name, type, precision, tactic) from IEngineInspector JSON, TensorRT 10 or 11 style."""
    rows = []
    for layer in json.loads(info_json).get("Layers", []):
        if isinstance(layer, str):  # built without DETAILED verbosity: names only
            rows.append({"name": layer, "type": "", "precision": "", "tactic": ""})
            continue
        precisions = []
        for tensor in layer.get("Outputs") or []:
            p = _tensor_precision(tensor)
            if p and p not in precisions:
                precisions.append(p)
        tactic = layer.get("TacticName") or layer.get("TacticValue") or ""
        rows.append({"name": layer.get("Name", "?"), "type": layer.get("LayerType", "?"),
                     "precision": ",".join(precisions), "tactic": str(tactic)})
    return rows


def _tensor_precision(tensor: dict) -> str:
    # TensorRT 10: "Format/Datatype": "Row major linear FP16 format"; 11 splits it into "Datatype" and "Format".
    text = tensor.get("Format/Datatype") or tensor.get("Datatype") or ""
    for token in text.replace("/", " ").replace("-", " ").split():
        if token.upper() in _PRECISION_TOKENS:
            return _PRECISION_TOKENS[token.upper()]
    return ""
