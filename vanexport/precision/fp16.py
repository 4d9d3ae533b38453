"""FP32 ONNX -> mixed FP16 ONNX for TensorRT strongly typed builds (onnxruntime.transformers.float16): every node
in FP16 except a block list (LayerNormalization by default), FP32 model inputs/outputs by default, nodes re-sorted
topologically (TensorRT's parser reads nodes in order)."""
from __future__ import annotations

import time
from pathlib import Path

from ..files import atomic_output, sha256_file
from ..logs import quiet_logger
from ..progress import as_progress
from . import graph as g
from .common import PrecisionResult, check_converted, load_fp32_source, prepare_output, seconds, stamp

DEFAULT_KEEP_FP32 = ("LayerNormalization",)  # FP16 LayerNorm overflow is a known TensorRT trap


def fp16_model(proto, blocked: list[str], keep_io_types: bool = True):
    """The mixed-precision proto: every node in FP16 except `blocked` (node names), which get Casts around them."""
    from onnxruntime.transformers import float16

    with quiet_logger("onnxruntime.transformers.float16"):
        converted = float16.convert_float_to_float16(
            proto, keep_io_types=keep_io_types, op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST),
            node_block_list=list(blocked))
    g.topological_sort(converted.graph)  # the converter appends its Casts at the end
    return converted


def convert_fp16(onnx_path, output=None, *, keep_fp32=(), keep_io_types: bool = True, layernorm_fp16: bool = False,
                 images=None, weights=None, reference=None, validate: bool = True, strict: bool = True,
                 progress=None) -> PrecisionResult:
    """A mixed FP16 graph for TensorRT strongly typed builds.

    `keep_fp32`: op types (exact) or node-name regexes to leave in FP32, on top of LayerNormalization
    (unless `layernorm_fp16`). `keep_io_types`: model inputs/outputs stay FP32 so callers need not change.
    The result is compared with PyTorch FP32 before it is written (`common.check_converted`): on `images` (a
    held-out folder) or on random batches and sample photos; nothing is written when it fails, unless `strict` is
    False (the failing verdict is then recorded). `validate=False` skips the check.
    """
    import onnx

    p = as_progress(progress)
    t0 = time.perf_counter()
    proto, meta, src_sha = load_fp32_source(onnx_path)
    out = prepare_output(onnx_path, output, "fp16")
    patterns = (() if layernorm_fp16 else DEFAULT_KEEP_FP32) + tuple(keep_fp32)
    warnings = [f"--keep-fp32 '{p}' matches no node" for p in g.unmatched(proto.graph, keep_fp32)]
    blocked = g.select_nodes(proto.graph, patterns)
    p.step(f"converting to FP16 ({len(blocked)} nodes kept in FP32)")
    converted = fp16_model(proto, blocked, keep_io_types)
    stamp(converted, meta, "fp16", Path(onnx_path), src_sha,
           {"keep_fp32": list(patterns), "keep_io_types": keep_io_types, "converter": "onnxruntime.transformers.float16"})
    onnx.checker.check_model(converted)
    kept = set(blocked)
    fp16_nodes = sum(1 for n in converted.graph.node if n.op_type != "Cast" and n.name not in kept)
    t_convert = time.perf_counter()
    with atomic_output(out) as tmp:
        onnx.save(converted, str(tmp))
        report, check_warnings = check_converted(
            tmp, out, meta, "fp16", images=images, weights=weights, reference=reference, validate=validate, strict=strict,
            progress=p, hint="keep the layers that lose accuracy in FP32 (--keep-fp32; `vanexport sensitivity "
                             "--precision fp16` finds them)")
        digest = sha256_file(tmp)
    t_end = time.perf_counter()
    return PrecisionResult(str(out), digest, "fp16", str(onnx_path), src_sha,
                           seconds(convert=t_convert - t0, validate=(t_end - t_convert) if report else None,
                                    total=t_end - t0),
                           report, blocked, fp16_nodes, None, warnings + check_warnings)
