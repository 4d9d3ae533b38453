"""FP32 ONNX -> Q/DQ INT8 ONNX in the form TensorRT's strongly typed builds accept, with ONNX Runtime's
quantize_static: symmetric INT8 activations and weights (zero points 0), per-channel weight scales, inputs of
Conv/Gemm/MatMul quantized, no output Q/DQ, and no bias quantization (TensorRT rejects INT32 bias
DequantizeLinear nodes). Calibration ranges are cached beside the output."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import VanexportError
from ..files import atomic_output, sha256_file
from ..formats.onnx_metadata import ModelMetadata
from ..logs import discard_stdout, quiet_logger
from ..runtime.batching import chunks
from . import graph as g
from .common import PrecisionResult, check_converted, copy_model, load_fp32_source, prepare_output, seconds, stamp

CALIBRATION_METHODS = ("entropy", "max", "percentile")
INT8_OPS = g.WEIGHTED_OPS


def quantize_int8(onnx_path, calib, output=None, *, num_calib: int = 256, method: str = "entropy", exclude=(),
                  images=None, weights=None, seed: int = 0, reference=None,
                  progress: Callable[[str], None] | None = None) -> PrecisionResult:
    """A Q/DQ INT8 graph TensorRT accepts, calibrated on `calib` (image folder or .npz of preprocessed batches).

    Calibration ranges are cached beside the output, keyed by the model's and the image set's hashes, and
    reused on the next run. `exclude`: node-name regexes (or op types) left unquantized. `images`: a held-out
    folder to validate on (INT8 thresholds; nothing is written if they fail).
    """
    import onnx

    step = progress or (lambda m: None)
    t0 = time.perf_counter()
    if method not in CALIBRATION_METHODS:
        raise VanexportError(f"unknown calibration method '{method}'", f"choose one of {', '.join(CALIBRATION_METHODS)}")
    proto, meta, src_sha = load_fp32_source(onnx_path)
    out = prepare_output(onnx_path, output, "int8")
    warnings = [f"--exclude '{p}' matches no node" for p in g.unmatched(proto.graph, exclude)]
    g.constants_to_initializers(proto)
    excluded = g.select_nodes(proto.graph, exclude)
    calibrator = Calibrator(proto, meta, src_sha, calib, num_calib, method, seed, cache_folder=out.parent,
                            cache_stem=out.stem)
    with atomic_output(out) as tmp:
        calibration = calibrator.quantize(tmp, excluded, step)
        quantized = onnx.load(str(tmp))
        stamp(quantized, meta, "int8", Path(onnx_path), src_sha,
               {"method": method, "num_calib": num_calib, "exclude": list(exclude), "op_types": list(INT8_OPS),
                "symmetric": True, "per_channel": True, "quantize_bias": False,
                "calibration_sha256": calibrator.cset.sha256,
                "calibration_source": str(Path(calibrator.cset.source).resolve()),
                "quantizer": "onnxruntime.quantization.quantize_static"})
        onnx.checker.check_model(quantized)
        onnx.save(quantized, str(tmp))
        t_convert = time.perf_counter()
        report = check_converted(tmp, images, weights, "int8", step,
                                 "exclude the layers that lose accuracy (--exclude; `vanexport sensitivity` finds them), "
                                 "or try another --method", reference)
        digest = sha256_file(tmp)
    t_end = time.perf_counter()
    excluded_set = set(excluded)
    kept = [n.name for n in proto.graph.node if n.op_type in INT8_OPS and n.name in excluded_set]
    quantized_count = sum(1 for n in proto.graph.node if n.op_type in INT8_OPS) - len(kept)
    return PrecisionResult(str(out), digest, "int8", str(onnx_path), src_sha,
                           seconds(quantize=t_convert - t0, validate=(t_end - t_convert) if report else None,
                                    total=t_end - t0),
                           report, kept, quantized_count, calibration, warnings + calibration.pop("warnings", []))


class Calibrator:
    """Calibrates once (or reads the cached ranges) and quantizes with any exclusion set: `quantize_int8`
    uses it once, `sensitivity` many times."""

    def __init__(self, proto, meta: ModelMetadata, source_sha: str, calib, num_calib: int, method: str, seed: int,
                 cache_folder: Path, cache_stem: str):
        from ..data.calibration import open_calibration

        self.proto, self.meta, self.method, self.num_calib, self.seed = proto, meta, method, num_calib, seed
        self.cset = open_calibration(calib)
        key = self.key(source_sha)
        self.cache_path = Path(cache_folder) / f"{cache_stem}.calib-{key}.json"

    def key(self, source_sha: str) -> str:
        import onnxruntime

        fields = {"model": source_sha, "images": self.cset.sha256, "num_calib": self.num_calib, "method": self.method,
                  "seed": self.seed, "op_types": INT8_OPS, "symmetric": True, "preprocessing": self.meta.preprocessing,
                  "onnxruntime": onnxruntime.__version__}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def quantize(self, out_path: Path, excluded: list[str], step=lambda m: None,
                 only: list[str] | None = None) -> dict:
        """Write the Q/DQ model to `out_path`; return what calibration did (cache hit or not, images, skipped)."""
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        hit = self.cache_path.is_file()
        reader = None
        if hit:
            record = _read_cache_record(self.cache_path)
            step(f"reusing calibration ranges from {self.cache_path}")
        else:
            from ..data.calibration import load_calibration

            step(f"reading {self.num_calib} calibration inputs from '{self.cset.source}'")
            load_calibration(self.cset, self.meta.preprocess, self.num_calib, self.seed)
            reader = _BatchReader(self.cset.array, self.meta)
            step(f"calibrating ({self.method}, {self.num_calib} inputs, ONNX Runtime CPU)")
            record = {"images": len(self.cset.array), "skipped": self.cset.skipped, "source": self.cset.source,
                      "images_sha256": self.cset.sha256}
        methods = {"entropy": CalibrationMethod.Entropy, "max": CalibrationMethod.MinMax,
                   "percentile": CalibrationMethod.Percentile}
        extra = {
            "ActivationSymmetric": True,  # zero points 0, as TensorRT requires
            "WeightSymmetric": True,
            "QuantizeBias": False,  # TensorRT's parser rejects INT32 bias DequantizeLinear nodes
            "OpTypesToExcludeOutputQuantization": list(INT8_OPS),  # Q/DQ on inputs only; TensorRT fuses the rest
            "QDQOpTypePerChannelSupportToAxis": {"Conv": 0, "ConvTranspose": 1},
            "DedicatedQDQPair": False,
        }
        if reader is not None and len(reader) > 1:
            extra["CalibStridedMinMax"] = reader.stride  # collect in chunks: bounded memory at any image size
        with quiet_logger(), discard_stdout():
            # a copy: on a cache miss ONNX Runtime moves the weights of the proto it is given to external data
            quantize_static(copy_model(self.proto), str(out_path), reader, quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=list(INT8_OPS), per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=list(excluded), nodes_to_quantize=list(only or []),
                            calibrate_method=methods[self.method], calibration_cache_path=str(self.cache_path),
                            extra_options=extra)
        if not hit:
            _write_cache_record(self.cache_path, record)
        skipped = record.get("skipped", [])
        warnings = [f"{len(skipped)} unreadable calibration files were skipped"] if skipped else []
        return {"method": self.method, "num_calib": self.num_calib, "images": record.get("images"),
                "skipped": len(skipped), "skipped_files": skipped, "source": self.cset.source,
                "images_sha256": self.cset.sha256, "cache": str(self.cache_path), "cache_hit": hit,
                "warnings": warnings}


class _BatchReader:
    """ONNX Runtime's CalibrationDataReader protocol (get_next, and set_range/len for strided collection)."""

    def __init__(self, array: np.ndarray, meta: ModelMetadata):
        self.batch = meta.static_batch or 8
        self.batches = [{meta.input_name: np.ascontiguousarray(b, np.float32)}
                        for b in chunks(array, self.batch, meta.static_batch or 1)]
        per_chunk = max(1, 64 // self.batch)  # about 64 images of activations in memory at a time
        self.stride = max(d for d in range(1, per_chunk + 1) if len(self.batches) % d == 0)
        self.set_range(0, len(self.batches))

    def __len__(self):
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int):
        self._it = iter(self.batches[start_index:end_index])

    def get_next(self):
        return next(self._it, None)


def _read_cache_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text()).get("vanexport", {})
    except (OSError, ValueError):
        return {}


def _write_cache_record(path: Path, record: dict) -> None:
    """Add what was calibrated on to ONNX Runtime's cache file (it ignores keys it does not know)."""
    data = json.loads(path.read_text())
    data["vanexport"] = record
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data))
