"""The runtime side of TensorRT: the process-wide logger with per-call capture of its errors, Runtime creation,
deserializing a plan, its I/O tensors, and the engine inspector's per-layer table (with an execution context, so
dynamic-shape plans show their formats). What a device needs; the builder is in vanexport.trt.

Every function takes the imported `tensorrt` module as `trt` (see machine.import_tensorrt).
"""
from __future__ import annotations

import contextlib
import json
import threading

from ..errors import VanexportError
from ..formats.engine_manifest import Profile, TensorSpec

# trt.DataType member name -> numpy-style name (the manifest speaks numpy)
DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
          "INT64": "int64", "BOOL": "bool", "UINT8": "uint8", "FP8": "float8e4m3", "INT4": "int4"}
# Tokens of the engine inspector's "Format/Datatype" (TensorRT 10) or "Datatype" (11) -> short precision names
_PRECISION_TOKENS = {"FP32": "fp32", "FLOAT": "fp32", "FP16": "fp16", "HALF": "fp16", "BF16": "bf16", "INT8": "int8",
                     "INT32": "int32", "INT64": "int64", "BOOL": "bool", "UINT8": "uint8", "FP8": "fp8", "INT4": "int4"}


def member_name(value) -> str:
    """'FLOAT' for trt.DataType.FLOAT (pybind11 enums have .name; str() gives 'DataType.FLOAT')."""
    return getattr(value, "name", None) or str(value).rsplit(".", 1)[-1]


class Capture:
    """The errors and warnings TensorRT logged while a `capture` block ran."""

    def __init__(self, logger):
        self.logger = logger  # the process-wide trt.ILogger: pass it to Builder, Runtime, OnnxParser
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def last_error(self, default: str = "no error message") -> str:
        return self.errors[-1] if self.errors else default


def process_logger(trt):
    """The one trt.ILogger of this process (TensorRT documents one logger per builder/runtime, older releases
    kept a single one per process, and objects keep the logger they were made with: one logger, created once,
    is right on every release). Messages go to every capture open at that moment: the builder logs from its own
    threads, so captures are not per thread."""
    global _LOGGER
    with _LOGGER_LOCK:
        if _LOGGER is None or _LOGGER.trt is not trt:  # a second module object only in tests (stand-ins)
            _LOGGER = _make_logger(trt)
        return _LOGGER


def _make_logger(trt):
    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.trt = trt
            self.lock = threading.Lock()
            self.open: list[Capture] = []

        def log(self, severity, msg):
            kind = member_name(severity)
            if kind not in ("INTERNAL_ERROR", "ERROR", "WARNING"):
                return
            with self.lock:
                for cap in self.open:
                    (cap.warnings if kind == "WARNING" else cap.errors).append(str(msg).strip())

    return Logger()


_LOGGER = None
_LOGGER_LOCK = threading.Lock()


@contextlib.contextmanager
def capture(trt):
    """`with capture(trt) as log:` the messages TensorRT logs until the block ends, in `log.errors` and
    `log.warnings`; `log.logger` is the process-wide logger to create TensorRT objects with."""
    logger = process_logger(trt)
    cap = Capture(logger)
    with logger.lock:
        logger.open.append(cap)
    try:
        yield cap
    finally:
        with logger.lock:
            logger.open.remove(cap)


def create(trt, factory: str, log: Capture):
    """trt.Builder or trt.Runtime (make the CUDA device current first: TensorRT has no device argument). Without
    a usable GPU TensorRT logs "CUDA initialization failure" and the binding raises a TypeError (nullptr); both
    become one VanexportError."""
    try:
        obj = getattr(trt, factory)(log.logger)
    except (TypeError, RuntimeError):
        obj = None
    if obj is None:
        raise VanexportError(f"TensorRT {trt.__version__} cannot create its {factory} "
                             f"({log.last_error('CUDA initialization failure')})",
                             "check `nvidia-smi` and that the driver is new enough for this TensorRT's CUDA version")
    return obj


def deserialize(trt, log: Capture, data: bytes, *, host_code: bool = False, dla_core: int | None = None):
    """(runtime, engine). The runtime is returned too: it must outlive the engine."""
    runtime = create(trt, "Runtime", log)
    if host_code and hasattr(runtime, "engine_host_code_allowed"):
        runtime.engine_host_code_allowed = True  # version-compatible plans carry their lean runtime
    if dla_core is not None:
        runtime.DLA_core = dla_core
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise VanexportError(f"TensorRT {trt.__version__} cannot load the plan ({log.last_error()})",
                             "rebuild it on this machine with `vanexport trt`")
    return runtime, engine


def engine_io(trt, engine) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs (with their profile-0 shapes) and outputs: name, dtype, shape (-1 for dynamic axes)."""
    inputs, outputs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        spec = TensorSpec(name, DTYPES.get(member_name(engine.get_tensor_dtype(name)), "unknown"),
                          [int(d) for d in engine.get_tensor_shape(name)])
        if member_name(engine.get_tensor_mode(name)) == "INPUT":  # TensorIOMode.INPUT
            lo, opt, hi = engine.get_tensor_profile_shape(name, 0)
            spec.profile = Profile([int(d) for d in lo], [int(d) for d in opt], [int(d) for d in hi])
            inputs.append(spec)
        else:
            outputs.append(spec)
    return inputs, outputs


def engine_layers(trt, engine) -> list[dict]:
    """The engine inspector's per-layer table (needs ProfilingVerbosity.DETAILED at build time for full rows).

    Without an execution context whose input shapes are set, the inspector shows -1 for shape-dependent values
    and leaves out the format information, the precision column with it (IEngineInspector::setExecutionContext):
    a context is attached with every input at its profile-0 opt shape. Call with the engine's device current.
    """
    inspector = engine.create_engine_inspector()
    context = engine.create_execution_context()  # kept referenced until the text is read (no keep_alive in pybind)
    if context is not None:
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if member_name(engine.get_tensor_mode(name)) == "INPUT":
                context.set_input_shape(name, tuple(engine.get_tensor_profile_shape(name, 0)[1]))
        inspector.execution_context = context
    info = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    del inspector, context
    return layer_rows(info)


# How a DLA subgraph shows in the inspector: one layer named {ForeignNode[first...last]} (NVIDIA/TensorRT#3143).
# On a GPU, Myelin's fused subgraphs have such names too, with LayerType "Myelin". UNVERIFIED on a Jetson here:
# the JSON LayerType of a DLA subgraph is not documented, so a ForeignNode that is not Myelin's counts as DLA.
def runs_on_dla(row: dict) -> bool:
    kind = row["type"].lower()
    return "dla" in kind or ("ForeignNode" in row["name"] and "myelin" not in kind)


# The copies between GPU memory and a DLA subgraph's, as a Jetson build names them (NVIDIA/TensorRT#3143: "images to
# nvm", "head_3 from nvm", "images copy finish"): every DLA engine has them, so they are no fallback to the GPU.
_DLA_COPIES = (" to nvm", " from nvm", " copy finish")


def dla_placement(rows: list[dict]) -> dict:
    """{"dla": subgraphs on the DLA, "gpu": layers that compute on the GPU} from `engine_layers` rows (the copies
    to and from the DLA's memory, which run on the GPU for every DLA subgraph, are counted in neither)."""
    dla = sum(1 for r in rows if runs_on_dla(r))
    copies = sum(1 for r in rows if not runs_on_dla(r) and r["name"].endswith(_DLA_COPIES))
    return {"dla": dla, "gpu": len(rows) - dla - copies}


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
