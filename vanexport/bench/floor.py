"""How fast could this machine run a model at all? Its ceilings, measured through ONNX Runtime, and two floors.

- compute floor: 2 x multiply-accumulates / the FP32 MatMul peak (a large MatMul through ONNX Runtime).
- roofline floor: per Conv/Gemm/MatMul layer, the larger of its FLOP time and the time to move its input,
  weights and output once at the measured bandwidth, summed. Element-wise and normalisation ops count as free
  (assumed fused), so both are lower bounds: no real run can beat them.
"""
from __future__ import annotations

import time

import numpy as np

FLOAT_BYTES = 4


def _session(model, threads: int | None):
    from ..runtime.onnxruntime_backend import make_session

    return make_session(model, threads=threads)


def _best_seconds(run, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        run()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_peak_gflops(n: int = 2048, threads: int | None = None, repeats: int = 10) -> float:
    """FP32 GFLOP/s of an n x n x n MatMul through ONNX Runtime's CPU provider (best of `repeats`)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
                              [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in ("a", "b")],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = _session(model, threads)
    rng = np.random.default_rng(0)
    feed = {k: rng.standard_normal((n, n), dtype=np.float32) for k in ("a", "b")}
    return 2 * n**3 / _best_seconds(lambda: sess.run(None, feed), repeats) / 1e9


def bandwidth_gbs(nbytes: int = 4 * 2**20, threads: int | None = None, repeats: int = 20) -> float:
    """GB/s that ONNX Runtime moves in an element-wise Add over `nbytes` (read + write counted, best of `repeats`).

    4 MiB stays in the last-level cache (the regime of batch-1 activations); hundreds of MiB measure DRAM.
    """
    from onnx import TensorProto, helper

    n = nbytes // FLOAT_BYTES
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "add",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])],
                              [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    sess = _session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), threads)
    feed = {"x": np.ones(n, np.float32)}
    return 2 * n * FLOAT_BYTES / _best_seconds(lambda: sess.run(None, feed), repeats) / 1e9


def layer_costs(onnx_path, batch: int = 1) -> list[dict]:
    """MACs and bytes moved (input + weights + output, FP32) of every Conv, Gemm and MatMul, at `batch`."""
    import onnx

    model = onnx.load(str(onnx_path))
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim0.Clear()
    dim0.dim_value = batch
    model = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    out = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        x, w, y = shapes[node.input[0]], shapes[node.input[1]], shapes[node.output[0]]
        if node.op_type == "Conv":
            macs = int(np.prod(y)) * int(np.prod(w[1:]))  # each output element: (C_in / groups) x kh x kw MACs
        elif node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            macs = int(np.prod(y)) * (w[1] if trans_b else w[0])
        else:
            macs = int(np.prod(y)) * x[-1]
        elems = sum(int(np.prod(shapes[i])) for i in node.input if i) + int(np.prod(y))
        out.append({"name": node.name, "op": node.op_type, "macs": macs, "bytes": elems * FLOAT_BYTES})
    return out


def floors_ms(costs: list[dict], peak_gflops: float, bandwidth_gbs: float) -> dict:
    """The compute floor and the per-layer roofline floor, in ms."""
    macs = sum(c["macs"] for c in costs)
    roofline = sum(max(2 * c["macs"] / (peak_gflops * 1e9), c["bytes"] / (bandwidth_gbs * 1e9)) for c in costs)
    memory_bound = sum(2 * c["macs"] / (peak_gflops * 1e9) < c["bytes"] / (bandwidth_gbs * 1e9) for c in costs)
    return {"gmacs": macs / 1e9, "compute_floor_ms": 2 * macs / (peak_gflops * 1e9) * 1e3,
            "roofline_floor_ms": roofline * 1e3, "layers": len(costs), "memory_bound_layers": int(memory_bound)}
