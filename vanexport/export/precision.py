"""FP32 ONNX -> mixed FP16 ONNX, or Q/DQ INT8 ONNX, in the form TensorRT's strongly typed builds accept.

Since TensorRT 11 the precision of an engine is decided by the ONNX file, so both conversions happen here,
on a CPU, with ONNX Runtime's own tools (see "Why these choices" in the README):
- FP16: onnxruntime.transformers.float16 with a node block list (LayerNormalization stays FP32 by default),
  FP32 model inputs/outputs by default, nodes re-sorted topologically.
- INT8: onnxruntime.quantization.quantize_static in QDQ format with TensorRT's rules: symmetric INT8
  activations and weights (zero points 0), per-channel weight scales, inputs of Conv/Gemm/MatMul quantized,
  no output Q/DQ, and no bias quantization (TensorRT rejects INT32 bias DequantizeLinear nodes).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from ..errors import ValidationFailed, VanexportError
from ..files import atomic_output, check_output_path, sha256_file
from . import graph as g
from .metadata import ModelMetadata, read_metadata, write_metadata

DEFAULT_KEEP_FP32 = ("LayerNormalization",)  # FP16 LayerNorm overflow is a known TensorRT trap
CALIBRATION_METHODS = ("entropy", "max", "percentile")
INT8_OPS = g.WEIGHTED_OPS


@dataclass
class PrecisionResult:
    path: str
    sha256: str
    precision: str  # "fp16" or "int8"
    source: str  # the FP32 ONNX it was made from
    source_sha256: str
    seconds: dict  # {"convert" (FP16) or "quantize" (INT8: calibration included): s, "validate": s, "total": s}
    validation: dict | None = None  # a ValidationReport record when held-out images were given
    kept_fp32: list[str] = field(default_factory=list)  # node names left in FP32 (FP16) / not quantized (INT8)
    converted_nodes: int = 0  # nodes computing in FP16 / weighted nodes with Q/DQ inputs
    calibration: dict | None = None  # INT8: method, images used, skipped, cache path and whether it was hit
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def default_output(onnx_path: str | Path, precision: str) -> Path:
    """engines/van_b0_224.onnx -> engines/van_b0_224_fp16.onnx / engines/van_b0_224_int8.onnx."""
    p = Path(onnx_path)
    return p.with_name(f"{p.stem}_{precision}{p.suffix or '.onnx'}")


def load_fp32_source(onnx_path):
    """(model proto, metadata, sha256) of an FP32 ONNX file written by `vanexport onnx`."""
    import onnx

    path = Path(onnx_path)
    if not path.exists():
        raise VanexportError(f"model file '{path}' not found", "pass an FP32 .onnx file made by `vanexport onnx`")
    if path.is_dir() or path.suffix.lower() != ".onnx":
        raise VanexportError(f"'{path.name}' is not an .onnx file", "pass an FP32 .onnx file made by `vanexport onnx`")
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # protobuf DecodeError and friends
        raise VanexportError(f"'{path}' is not a readable ONNX file ({str(e).splitlines()[0][:120]})",
                             "export it again with `vanexport onnx`") from e
    meta = read_metadata(proto)
    if meta.precision != "fp32":
        raise VanexportError(f"'{path.name}' is already {meta.precision.upper()}",
                             "convert the FP32 file it was made from (" + meta.extra.get("source", "see its metadata") + ")")
    return proto, meta, sha256_file(path)


def _prepare_output(onnx_path, output, precision: str) -> Path:
    out = Path(output) if output else default_output(onnx_path, precision)
    if Path(out).resolve() == Path(onnx_path).resolve():
        raise VanexportError("the output would overwrite the FP32 source", "choose another -o path")
    return check_output_path(out)


def _stamp(proto, meta: ModelMetadata, precision: str, source: Path, source_sha: str, settings: dict) -> None:
    """The converted file describes itself like the FP32 one, plus its precision and where it came from."""
    meta.precision = precision
    meta.vanexport_version = __version__
    meta.extra = {**meta.extra, "source": str(source), "source_sha256": source_sha,
                  "precision_settings": json.dumps(settings, sort_keys=True)}
    write_metadata(proto, meta)
    proto.producer_name, proto.producer_version = "vanexport", __version__
    proto.doc_string = f"VAN-{meta.variant} ({meta.num_classes} classes), {precision.upper()}, by vanexport {__version__}"


def _validate(tmp: Path, images, weights, precision: str, step, hint: str) -> dict | None:
    if images is None:
        return None
    step(f"validating {precision.upper()} against PyTorch FP32 on '{images}' (ONNX Runtime CPU)")
    from ..validate import validate_file

    report = validate_file(tmp, weights=weights, images=images)
    if not report.passed:
        raise ValidationFailed(f"the {precision.upper()} model fails its thresholds on '{images}': "
                               + "; ".join(report.failures) + "; nothing was written", hint)
    return report.to_dict()


# ---- FP16 ------------------------------------------------------------------------------------------

def fp16_model(proto, blocked: list[str], keep_io_types: bool = True):
    """The mixed-precision proto: every node in FP16 except `blocked` (node names), which get Casts around them."""
    from onnxruntime.transformers import float16

    with _quiet_logger("onnxruntime.transformers.float16"):
        converted = float16.convert_float_to_float16(
            proto, keep_io_types=keep_io_types, op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST),
            node_block_list=list(blocked))
    g.topological_sort(converted.graph)  # the converter appends its Casts at the end
    return converted


def convert_fp16(onnx_path, output=None, *, keep_fp32=(), keep_io_types: bool = True, layernorm_fp16: bool = False,
                 images=None, weights=None, progress: Callable[[str], None] | None = None) -> PrecisionResult:
    """A mixed FP16 graph for TensorRT strongly typed builds.

    `keep_fp32`: op types (exact) or node-name regexes to leave in FP32, on top of LayerNormalization
    (unless `layernorm_fp16`). `keep_io_types`: model inputs/outputs stay FP32 so callers need not change.
    `images`: a held-out folder to validate on (FP16 thresholds; nothing is written if they fail).
    """
    import onnx

    step = progress or (lambda m: None)
    t0 = time.perf_counter()
    proto, meta, src_sha = load_fp32_source(onnx_path)
    out = _prepare_output(onnx_path, output, "fp16")
    patterns = (() if layernorm_fp16 else DEFAULT_KEEP_FP32) + tuple(keep_fp32)
    warnings = [f"--keep-fp32 '{p}' matches no node" for p in g.unmatched(proto.graph, keep_fp32)]
    blocked = g.select_nodes(proto.graph, patterns)
    step(f"converting to FP16 ({len(blocked)} nodes kept in FP32)")
    converted = fp16_model(proto, blocked, keep_io_types)
    _stamp(converted, meta, "fp16", Path(onnx_path), src_sha,
           {"keep_fp32": list(patterns), "keep_io_types": keep_io_types, "converter": "onnxruntime.transformers.float16"})
    onnx.checker.check_model(converted)
    kept = set(blocked)
    fp16_nodes = sum(1 for n in converted.graph.node if n.op_type != "Cast" and n.name not in kept)
    t_convert = time.perf_counter()
    with atomic_output(out) as tmp:
        onnx.save(converted, str(tmp))
        report = _validate(tmp, images, weights, "fp16", step,
                           "keep the layers that lose accuracy in FP32 (--keep-fp32; `vanexport sensitivity --fp16` finds them)")
        digest = sha256_file(tmp)
    t_end = time.perf_counter()
    return PrecisionResult(str(out), digest, "fp16", str(onnx_path), src_sha,
                           _seconds(convert=t_convert - t0, validate=(t_end - t_convert) if report else None,
                                    total=t_end - t0),
                           report, blocked, fp16_nodes, None, warnings)


# ---- INT8 ------------------------------------------------------------------------------------------

def quantize_int8(onnx_path, calib, output=None, *, num_calib: int = 256, method: str = "entropy", exclude=(),
                  images=None, weights=None, seed: int = 0,
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
    out = _prepare_output(onnx_path, output, "int8")
    warnings = [f"--exclude '{p}' matches no node" for p in g.unmatched(proto.graph, exclude)]
    g.constants_to_initializers(proto)
    excluded = g.select_nodes(proto.graph, exclude)
    calibrator = Calibrator(proto, meta, src_sha, calib, num_calib, method, seed, cache_folder=out.parent,
                            cache_stem=out.stem)
    with atomic_output(out) as tmp:
        calibration = calibrator.quantize(tmp, excluded, step)
        quantized = onnx.load(str(tmp))
        _stamp(quantized, meta, "int8", Path(onnx_path), src_sha,
               {"method": method, "num_calib": num_calib, "exclude": list(exclude), "op_types": list(INT8_OPS),
                "symmetric": True, "per_channel": True, "quantize_bias": False,
                "calibration_sha256": calibrator.cset.sha256,
                "calibration_source": str(Path(calibrator.cset.source).resolve()),
                "quantizer": "onnxruntime.quantization.quantize_static"})
        onnx.checker.check_model(quantized)
        onnx.save(quantized, str(tmp))
        t_convert = time.perf_counter()
        report = _validate(tmp, images, weights, "int8", step,
                           "exclude the layers that lose accuracy (--exclude; `vanexport sensitivity` finds them), "
                           "or try another --method")
        digest = sha256_file(tmp)
    t_end = time.perf_counter()
    excluded_set = set(excluded)
    kept = [n.name for n in proto.graph.node if n.op_type in INT8_OPS and n.name in excluded_set]
    quantized_count = sum(1 for n in proto.graph.node if n.op_type in INT8_OPS) - len(kept)
    return PrecisionResult(str(out), digest, "int8", str(onnx_path), src_sha,
                           _seconds(quantize=t_convert - t0, validate=(t_end - t_convert) if report else None,
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
        with _quiet_logger("root"), contextlib.redirect_stdout(_Discard()):
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
        static = meta.input_shape[0] if not meta.dynamic_batch else None
        self.batch = static or 8
        self.batches = []
        for i in range(0, len(array), self.batch):
            b = array[i:i + self.batch]
            if static and len(b) < static:  # a static-batch model takes nothing else: pad by repeating
                b = np.concatenate([b, np.repeat(b[-1:], static - len(b), axis=0)])
            self.batches.append({meta.input_name: np.ascontiguousarray(b, np.float32)})
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


def copy_model(proto):
    new = type(proto)()
    new.CopyFrom(proto)
    return new


def _seconds(**kw) -> dict:
    return {k: round(v, 3) for k, v in kw.items() if v is not None}


class _Discard:
    def write(self, s):
        return len(s)

    def flush(self):
        pass


@contextlib.contextmanager
def _quiet_logger(name: str):
    """ONNX Runtime's converters log chatty advice at WARNING; our progress lines say what happens."""
    logger = logging.getLogger(None if name == "root" else name)
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)
