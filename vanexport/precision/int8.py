"""FP32 ONNX -> Q/DQ INT8 ONNX in the form TensorRT's strongly typed builds accept, with ONNX Runtime's
quantize_static: symmetric INT8 activations and weights (zero points 0), per-channel weight scales, inputs of
Conv/Gemm/MatMul quantized, no output Q/DQ, and no bias quantization (TensorRT rejects INT32 bias
DequantizeLinear nodes). Calibration ranges are cached beside the output."""
from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ..data.calibration import few_inputs_warning
from ..errors import VanexportError
from ..files import atomic_output, sha256_file
from ..formats.onnx_metadata import ModelMetadata
from ..logs import discard_stdout, quiet_logger
from ..progress import as_progress
from . import graph as g
from .entropy import NUM_BINS, NUM_QUANTIZED_BINS
from .common import PrecisionResult, check_converted, copy_model, load_fp32_source, prepare_output, seconds, stamp

CALIBRATION_METHODS = ("entropy", "max", "percentile")
INT8_OPS = g.WEIGHTED_OPS


def quantize_int8(onnx_path, calib, output=None, *, num_calib: int | None = None, method: str = "entropy",
                  exclude=(), images=None, weights=None, seed: int = 0, reference=None, validate: bool = True,
                  strict: bool = True, progress=None) -> PrecisionResult:
    """A Q/DQ INT8 graph TensorRT accepts, calibrated on `calib` (image folder or .npz of preprocessed batches):
    on `num_calib` inputs, or on every one there is, up to 256.

    Calibration ranges are cached beside the output, keyed by the model's and the image set's hashes, and
    reused on the next run. `exclude`: node-name regexes (or op types) left unquantized. The result is compared
    with PyTorch FP32 before it is written (`check_converted`): on `images` (a held-out folder) or on random
    batches and sample photos; nothing is written when it fails, unless `strict` is False (the failing verdict is
    then recorded). `validate=False` skips the check. `progress`: see vanexport.progress.
    """
    import onnx

    p = as_progress(progress)
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
        calibration = calibrator.quantize(tmp, excluded, p)
        quantized = onnx.load(str(tmp))
        stamp(quantized, meta, "int8", Path(onnx_path), src_sha,
               {"method": method, "num_calib": num_calib, "calibration_images": calibration["images"],
                "exclude": list(exclude), "op_types": list(INT8_OPS),
                "symmetric": True, "per_channel": True, "quantize_bias": False,
                "calibration_sha256": calibrator.cset.sha256,
                "calibration_source": str(Path(calibrator.cset.source).resolve()),
                "quantizer": "onnxruntime.quantization.quantize_static"})
        onnx.checker.check_model(quantized)
        onnx.save(quantized, str(tmp))
        t_convert = time.perf_counter()
        report, check_warnings = check_converted(
            tmp, out, meta, "int8", images=images, weights=weights, reference=reference, validate=validate, strict=strict,
            progress=p, hint="exclude the layers that lose accuracy (--exclude; `vanexport sensitivity` finds them), "
                             "or try another --method")
        digest = sha256_file(tmp)
    t_end = time.perf_counter()
    excluded_set = set(excluded)
    kept = [n.name for n in proto.graph.node if n.op_type in INT8_OPS and n.name in excluded_set]
    quantized_count = sum(1 for n in proto.graph.node if n.op_type in INT8_OPS) - len(kept)
    return PrecisionResult(str(out), digest, "int8", str(onnx_path), src_sha,
                           seconds(quantize=t_convert - t0, validate=(t_end - t_convert) if report else None,
                                    total=t_end - t0),
                           report, kept, quantized_count, calibration,
                           warnings + calibration.pop("warnings", []) + check_warnings)


class Calibrator:
    """Calibrates once (or reads the cached ranges) and quantizes with any exclusion set: `quantize_int8`
    uses it once, `sensitivity` many times."""

    def __init__(self, proto, meta: ModelMetadata, source_sha: str, calib, num_calib: int | None, method: str,
                 seed: int, cache_folder: Path, cache_stem: str):
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
        if self.method == "entropy":
            fields["entropy"] = {"bins": NUM_BINS, "quantized_bins": NUM_QUANTIZED_BINS}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def quantize(self, out_path: Path, excluded: list[str], progress=None, only: list[str] | None = None) -> dict:
        """Write the Q/DQ model to `out_path`; return what calibration did (cache hit or not, images, skipped)."""
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        p = as_progress(progress)
        notices = []
        hit = self._cache_usable(notices)
        reader = None
        if hit:
            record = _read_cache_record(self.cache_path)
            p.step(f"reusing calibration ranges from {self.cache_path}")
        else:
            from ..data.calibration import load_calibration

            load_calibration(self.cset, self.meta.preprocess, self.num_calib, self.seed, progress=p)
            n = len(self.cset.array)
            record = {"images": n, "skipped": self.cset.skipped, "source": self.cset.source,
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
        with contextlib.ExitStack() as stack:
            if not hit:
                task = stack.enter_context(p.task(f"calibrating ({self.method}, {n} inputs, ONNX Runtime CPU)", n,
                                                  "images"))
                reader = _BatchReader(self.cset.array, self.meta, task)
                extra["CalibStridedMinMax"] = reader.stride  # in rounds: bounded memory at any image size
            stack.enter_context(quiet_logger())
            stack.enter_context(discard_stdout())
            if not hit and self.method == "entropy":  # our own KL search on 2048-bin histograms (see entropy.py)
                self._calibrate_entropy(reader)
                reader = None  # quantize_static now reads the ranges from the cache
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
        warnings = notices + ([f"{len(skipped)} unreadable calibration files were skipped"] if skipped else [])
        if isinstance(record.get("images"), int):
            warnings += few_inputs_warning(record["images"])
        return {"method": self.method, "num_calib": self.num_calib, "images": record.get("images"),
                "skipped": len(skipped), "skipped_files": skipped, "source": self.cset.source,
                "images_sha256": self.cset.sha256, "cache": str(self.cache_path), "cache_hit": hit,
                "warnings": warnings}


    def _cache_usable(self, notices: list[str]) -> bool:
        """Whether the calibration cache is there and whole. One cut short or damaged (a run killed while an older
        vanexport wrote it, an edit by hand) is removed, with a notice, and calibration runs again: quantize_static
        would fail on it in every run until it was deleted."""
        from onnxruntime.quantization.calibrate import load_tensors_data

        path = self.cache_path
        if not path.exists():
            return False
        if not path.is_file():
            raise VanexportError(f"calibration cache '{path}' is not a file",
                                 "remove it, or write the output to another folder")
        try:
            load_tensors_data(path)  # as quantize_static will read it
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            path.unlink()
            notices.append(f"the calibration cache {path.name} was damaged ({type(e).__name__}) and was removed: "
                           "calibrating again")
            return False
        return True

    def _calibrate_entropy(self, reader) -> None:
        """Write the KL-optimal ranges to the calibration cache, in ONNX Runtime's format."""
        import onnx
        from onnxruntime.quantization.calibrate import save_tensors_data

        from ..files import work_folder
        from .entropy import entropy_ranges

        with work_folder() as work:
            model = work / "model.onnx"
            onnx.save(copy_model(self.proto), str(model), save_as_external_data=True)
            save_tensors_data(entropy_ranges(model, reader, INT8_OPS, work), self.cache_path)


CALIB_BATCH = 8  # preferred calibration batch (a static-batch model uses its own)
CALIB_ROUND_IMAGES = 64  # activations of about this many images are held in memory at a time


def calibration_batches(n: int, static_batch: int | None = None) -> tuple[int, int, int]:
    """(batch size, number of batches, batches per collection round) for calibrating on `n` inputs.

    Every batch has the same size: ONNX Runtime's histogram calibrators (entropy, percentile) stack the outputs of a
    round into one array, so one short last batch crashes them ("inhomogeneous shape"). A dynamic-batch model takes
    the largest divisor of `n` up to CALIB_BATCH (61 inputs: 61 batches of 1); a static-batch one its own batch, the
    last padded by repeating images. A round (ONNX Runtime's CalibStridedMinMax, which must divide the number of
    batches) holds at most CALIB_ROUND_IMAGES images, so memory stays bounded at any image size."""
    if static_batch:
        batch = static_batch
        count = -(-n // batch)
    else:
        batch = max(d for d in range(1, min(CALIB_BATCH, n) + 1) if n % d == 0)
        count = n // batch
    per_round = max(1, CALIB_ROUND_IMAGES // batch)
    stride = max(d for d in range(1, min(per_round, count) + 1) if count % d == 0)
    return batch, count, stride


class _BatchReader:
    """ONNX Runtime's CalibrationDataReader protocol (get_next, and set_range/len for collection in rounds), over
    batches of one size (`calibration_batches`); counts the inputs it hands out on `task`."""

    def __init__(self, array: np.ndarray, meta: ModelMetadata, task=None):
        from ..runtime.batching import pad_batch

        self.batch, count, self.stride = calibration_batches(len(array), meta.static_batch)
        self.batches = [{meta.input_name: np.ascontiguousarray(pad_batch(array[i:i + self.batch], self.batch),
                                                               np.float32)}
                        for i in range(0, count * self.batch, self.batch)]
        self.sizes = [len(array[i:i + self.batch]) for i in range(0, count * self.batch, self.batch)]
        self.task = task
        self.set_range(0, len(self.batches))

    def __len__(self):
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int):
        self._it = iter(range(start_index, min(end_index, len(self.batches))))

    def get_next(self):
        i = next(self._it, None)
        if i is None:
            return None
        if self.task is not None:
            self.task.advance(self.sizes[i])
        return self.batches[i]


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
