"""vanexport: Visual Attention Network (VAN) classifiers from PyTorch to ONNX and TensorRT.

The public API is imported lazily so `import vanexport` (and `vanexport --help`) stays instant.
"""
from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "export_onnx": "vanexport.export.onnx",
    "ExportResult": "vanexport.export.onnx",
    "validate": "vanexport.validate",
    "ValidationReport": "vanexport.validate",
    "load_model": "vanexport.model.factory",
    "create_model": "vanexport.model.factory",
    "read_metadata": "vanexport.export.metadata",
    "get_variant": "vanexport.model.variants",
    "VARIANTS": "vanexport.model.variants",
    "VanexportError": "vanexport.errors",
    "environment_info": "vanexport.info",
    "convert_fp16": "vanexport.export.precision",
    "quantize_int8": "vanexport.export.precision",
    "PrecisionResult": "vanexport.export.precision",
    "sensitivity": "vanexport.analysis",
    "SensitivityReport": "vanexport.analysis",
    "export_trt": "vanexport.trt.chain",
    "TrtResult": "vanexport.trt.chain",
    "build_engine": "vanexport.trt.build",
    "EngineResult": "vanexport.trt.build",
    "BuildSettings": "vanexport.trt.settings",
    "EngineManifest": "vanexport.trt.manifest",
    "read_manifest": "vanexport.trt.manifest",
    "check_loadable": "vanexport.trt.manifest",
    "require_tensorrt": "vanexport.trt.environment",
    "TensorRTBackend": "vanexport.runtime.tensorrt_backend",
    "validate_plan": "vanexport.validate",
    "inspect_file": "vanexport.inspection",
    "make_bundle": "vanexport.ship.bundle",
    "BundleResult": "vanexport.ship.bundle",
    "open_bundle": "vanexport.ship.bundle",
    "Bundle": "vanexport.ship.bundle",
    "add_engine_to_bundle": "vanexport.ship.bundle",
    "check_engine_against_bundle": "vanexport.ship.bundle",
    "unpack_bundle": "vanexport.ship.bundle",
    "read_bundle": "vanexport.ship.archive",
    "load_classifier": "vanexport.runtime.classify",
    "predict": "vanexport.runtime.classify",
    "PredictResult": "vanexport.runtime.classify",
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
