"""The runtime side of TensorRT: a logger that keeps errors, Runtime creation, deserializing a plan, its I/O
tensors, and the engine inspector's per-layer table. What a device needs; the builder is in vanexport.trt.

Every function takes the imported `tensorrt` module as `trt` (see machine.import_tensorrt).
"""
from __future__ import annotations

import json

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
