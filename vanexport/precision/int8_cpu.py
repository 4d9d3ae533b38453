"""FP32 ONNX -> INT8 ONNX made for the CPU: NNCF's post-training quantization (its ONNX backend, target device CPU),
which places quantizers where OpenVINO's CPU kernels compute in INT8 (VNNI, AMX), calibrated on the same images and
the same seeded pick as the TensorRT Q/DQ file, and judged by the same INT8 gates, run through OpenVINO.

Why this form (measured on a 2-core Xeon with VNNI and AMX, VAN-b0 at 224, benchmarks/cpu_int8.py, docs/precision.md
#int8-for-the-cpu): NNCF on the ONNX file gives a Q/DQ ONNX whose every convolution OpenVINO runs in INT8; NNCF on
the OpenVINO model read from the same file left the depthwise convolutions in FP32 and ran no faster than FP32;
ONNX Runtime's CPU kernels ran every INT8 form (QOperator or QDQ, U8S8 or S8S8, this file too) slower than its FP32.
The file stays an ONNX file with vanexport's metadata, so every later command reads it like the others."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data.calibration import few_inputs_warning
from ..errors import VanexportError
from ..files import atomic_output, sha256_file
from ..formats.names import CPU_INT8_TAG
from ..logs import discard_stdout, quiet_logger
from ..progress import as_progress
from . import graph as g
from .common import PrecisionResult, check_converted, copy_model, load_fp32_source, prepare_output, seconds, stamp

HINT = "install the cpu-int8 extra: pip install 'vanexport[cpu-int8]' (NNCF and OpenVINO)"
QUANTIZER = "nncf.quantize (ONNX backend, target device CPU, preset performance)"
RUNTIME = "openvino"  # the runtime this form is made for, and checked on


def quantize_int8_cpu(onnx_path, calib, output=None, *, num_calib: int | None = None, exclude=(), images=None,
                      weights=None, seed: int = 0, reference=None, validate: bool = True, strict: bool = True,
                      progress=None) -> PrecisionResult:
    """An INT8 ONNX file for OpenVINO's CPU kernels, calibrated on `calib` (image folder or .npz; `num_calib` inputs,
    or every one up to 256, the same seeded pick `quantize_int8` takes). `exclude`: node-name regexes (or op types)
    NNCF leaves unquantized. Checked against PyTorch FP32 through OpenVINO before it is written (`check_converted`
    with the INT8 thresholds): nothing is written when it fails, unless `strict` is False."""
    nncf = import_nncf()
    p = as_progress(progress)
    t0 = time.perf_counter()
    proto, meta, src_sha = load_fp32_source(onnx_path)
    out = prepare_output(onnx_path, output, CPU_INT8_TAG)
    warnings = [f"--exclude '{x}' matches no node" for x in g.unmatched(proto.graph, exclude)]
    g.constants_to_initializers(proto)  # folded layer-scale weights are weights, not activations (see graph.py)
    excluded = g.select_nodes(proto.graph, exclude)
    cset, batches = calibration_batches_for(calib, meta, num_calib, seed, p)
    with atomic_output(out) as tmp:
        p.step(f"calibrating with NNCF ({len(cset.array)} inputs, ONNX Runtime CPU)")
        with quiet_logger(), discard_stdout():
            quantized = nncf.quantize(copy_model(proto), nncf.Dataset(batches, lambda x: {meta.input_name: x}),
                                      target_device=nncf.TargetDevice.CPU, subset_size=len(cset.array),
                                      preset=nncf.QuantizationPreset.PERFORMANCE,
                                      ignored_scope=nncf.IgnoredScope(names=excluded, validate=False))
        meta.extra = {**meta.extra, "int8_form": "cpu"}  # formats.onnx_metadata.ModelMetadata.int8_form
        stamp(quantized, meta, "int8", Path(onnx_path), src_sha, cpu_settings(cset, num_calib, exclude, nncf))
        import onnx

        onnx.checker.check_model(quantized)
        onnx.save(quantized, str(tmp))
        t_convert = time.perf_counter()
        report, check_warnings = check_converted(
            tmp, out, meta, "int8", images=images, weights=weights, reference=reference, validate=validate,
            strict=strict, progress=p, validator=validate_on_openvino,
            hint="exclude the layers that lose accuracy (--exclude; `vanexport sensitivity` finds them)")
        digest = sha256_file(tmp)
    t_end = time.perf_counter()
    quantized_count = len(quantized_weighted_nodes(quantized.graph))
    calibration = {"method": "nncf", "num_calib": num_calib, "images": len(cset.array), "skipped": len(cset.skipped),
                   "skipped_files": cset.skipped, "source": cset.source, "images_sha256": cset.sha256,
                   "cache": None, "cache_hit": False}
    extra_warnings = few_inputs_warning(len(cset.array))
    if cset.skipped:
        extra_warnings.append(f"{len(cset.skipped)} unreadable calibration files were skipped")
    return PrecisionResult(str(out), digest, "int8", str(onnx_path), src_sha,
                           seconds(quantize=t_convert - t0, validate=(t_end - t_convert) if report else None,
                                   total=t_end - t0),
                           report, list(excluded), quantized_count, calibration,
                           warnings + extra_warnings + check_warnings)


def quantized_weighted_nodes(graph) -> list[str]:
    """Names of the Conv/Gemm/MatMul nodes whose weights come through a DequantizeLinear (computed in INT8)."""
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    return [n.name for n in graph.node if n.op_type in g.WEIGHTED_OPS and len(n.input) > 1
            and n.input[1] in dequantized]


def import_nncf():
    """The `nncf` module, or a one-line VanexportError."""
    try:
        with quiet_logger():
            import nncf
    except ImportError as e:
        raise VanexportError(f"NNCF is not installed ({str(e).splitlines()[0] if str(e) else 'ImportError'})",
                             HINT) from e
    return nncf


def calibration_batches_for(calib, meta, num_calib, seed, progress):
    """The calibration set (opened and read as `quantize_int8` reads it) and its inputs cut into the batches NNCF
    is fed: single images for a dynamic-batch model, the model's own batch (the last padded) for a static one."""
    from ..data.calibration import load_calibration, open_calibration
    from ..runtime.batching import pad_batch

    cset = load_calibration(open_calibration(calib), meta.preprocess, num_calib, seed, progress=progress)
    size = meta.static_batch or 1
    batches = [np.ascontiguousarray(pad_batch(cset.array[i:i + size], size), np.float32)
               for i in range(0, len(cset.array), size)]
    return cset, batches


def cpu_settings(cset, num_calib, exclude, nncf) -> dict:
    """What the file records about how it was made (its `precision_settings`); the pipeline's reuse keys are in it."""
    return {"method": "nncf", "num_calib": num_calib, "calibration_images": len(cset.array),
            "exclude": list(exclude), "calibration_sha256": cset.sha256,
            "calibration_source": str(Path(cset.source).resolve()), "quantizer": QUANTIZER,
            "nncf": nncf.__version__, "form": "cpu", "runtime": RUNTIME}


def validate_on_openvino(path, *, weights=None, images=None, reference=None, progress=None, seed: int = 0):
    """The INT8 check of `check.validate.validate_onnx`, with OpenVINO (the runtime the file is made for) running
    the candidate instead of ONNX Runtime."""
    from ..check.compare import compare
    from ..check.inputs import check_groups
    from ..check.tolerances import TOLERANCES
    from ..formats.onnx_metadata import read_metadata
    from ..model.reference import reference_model
    from ..runtime.openvino_backend import OpenVinoBackend

    meta = read_metadata(path)
    model = reference if reference is not None else reference_model(meta, weights)
    backend = OpenVinoBackend(path, precision="fp32")  # "fp32": what is not quantized computes in FP32
    backend.check_matches(meta, Path(path).name)
    runtime = f"OpenVINO {backend.version.split('-')[0]} CPU"
    where = f"'{images}'" if images else "random batches and sample photos"
    groups = check_groups(meta, images, seed, static_batch=meta.static_batch, progress=progress)
    return compare(backend, model, groups, TOLERANCES["int8"], str(path), output_name=meta.output_name,
                   runtime=runtime, progress=progress,
                   description=f"checking INT8 (CPU form) against PyTorch FP32 on {where} ({runtime})")
