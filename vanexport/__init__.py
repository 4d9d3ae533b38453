"""vanexport: Visual Attention Network (VAN) classifiers from PyTorch to ONNX and TensorRT.

The public API is imported lazily so `import vanexport` (and `vanexport --help`) stays instant.
"""
from __future__ import annotations

import os

__version__ = "0.1.0"

# ONNX Runtime (1.29 and later) records and uploads telemetry unless told not to, writing a device id and an event
# store under ~/.cache/Microsoft and $TMPDIR/.ses (measured: docs/security.md). A device tool keeps it off unless
# the user asks for it (ORT_DISABLE_TELEMETRY=0); ONNX Runtime reads the variable when it loads, after this.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

_API = {
    "export_onnx": "vanexport.export.onnx",
    "ExportResult": "vanexport.export.onnx",
    "validate": "vanexport.check.validate",
    "validate_plan": "vanexport.check.validate",
    "ValidationReport": "vanexport.check.compare",
    "load_model": "vanexport.model.factory",
    "create_model": "vanexport.model.factory",
    "read_metadata": "vanexport.formats.onnx_metadata",
    "ModelMetadata": "vanexport.formats.onnx_metadata",
    "EngineManifest": "vanexport.formats.engine_manifest",
    "read_manifest": "vanexport.formats.engine_manifest",
    "check_loadable": "vanexport.formats.engine_manifest",
    "BundleManifest": "vanexport.formats.bundle_manifest",
    "get_variant": "vanexport.model.variants",
    "VARIANTS": "vanexport.model.variants",
    "VanexportError": "vanexport.errors",
    "Progress": "vanexport.progress",
    "ConsoleProgress": "vanexport.progress",
    "environment_info": "vanexport.machine",
    "require_tensorrt": "vanexport.machine",
    "convert_fp16": "vanexport.precision.fp16",
    "quantize_int8": "vanexport.precision.int8",
    "PrecisionResult": "vanexport.precision.common",
    "sensitivity": "vanexport.precision.sensitivity",
    "SensitivityReport": "vanexport.precision.sensitivity",
    "Artifact": "vanexport.pipeline",
    "ModelSource": "vanexport.pipeline",
    "ensure_onnx": "vanexport.pipeline",
    "ensure_precision": "vanexport.pipeline",
    "ensure_plan": "vanexport.pipeline",
    "export_trt": "vanexport.pipeline",
    "TrtResult": "vanexport.pipeline",
    "build_engine": "vanexport.trt.build",
    "EngineResult": "vanexport.trt.build",
    "BuildSettings": "vanexport.trt.settings",
    "TensorRTBackend": "vanexport.runtime.tensorrt_backend",
    "OnnxRuntimeBackend": "vanexport.runtime.onnxruntime_backend",
    "inspect_file": "vanexport.inspection",
    "make_bundle": "vanexport.ship.bundle",
    "BundleResult": "vanexport.ship.bundle",
    "add_engine_to_bundle": "vanexport.ship.bundle",
    "open_bundle": "vanexport.device.bundle",
    "Bundle": "vanexport.device.bundle",
    "check_engine_against_bundle": "vanexport.device.bundle",
    "unpack_bundle": "vanexport.device.bundle",
    "read_bundle": "vanexport.device.archive",
    "load_classifier": "vanexport.device.classify",
    "predict": "vanexport.device.classify",
    "PredictResult": "vanexport.device.classify",
    "triton_repository": "vanexport.ship.triton",
    "deepstream_config": "vanexport.ship.deepstream",
    "benchmark": "vanexport.bench.run",
    "BenchReport": "vanexport.bench.run",
}
__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'vanexport' has no attribute {name!r}")
