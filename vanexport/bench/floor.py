"""How fast could this machine run a model at all? Its ceilings, measured through ONNX Runtime, and two floors.

- compute floor: 2 x multiply-accumulates / the FP32 MatMul peak (a large MatMul through ONNX Runtime). An INT8
  row has its own: the INT8 MatMul peak through the runtime that runs it (`int8_matmul_peak_gops`: a quantized
  MatMul in ONNX Runtime, a Q/DQ MatMul in OpenVINO), as a BF16 row has OpenVINO's BF16 MatMul peak.
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


def _matmul_model(n: int, int8: bool):
    """An n x n x n MatMul, FP32 or in INT8 Q/DQ form: activations quantized to uint8 (ONNX Runtime's CPU kernels
    take U8 x S8), weights int8 per tensor, the product dequantized. ONNX Runtime fuses it into one quantized
    MatMul, OpenVINO into one INT8 matrix multiply (VNNI / AMX where the CPU has them)."""
    from onnx import TensorProto, helper, numpy_helper

    if not int8:
        graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
                                  [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                                  [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
                                  [numpy_helper.from_array(np.random.default_rng(1).standard_normal(
                                      (n, n), dtype=np.float32), "b")])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    weights = np.random.default_rng(1).integers(-127, 128, (n, n), dtype=np.int8)
    init = [numpy_helper.from_array(weights, "bq"), numpy_helper.from_array(np.array(0.01, np.float32), "s"),
            numpy_helper.from_array(np.array(128, np.uint8), "za"), numpy_helper.from_array(np.array(0, np.int8), "zb"),
            numpy_helper.from_array(np.array(0.05, np.float32), "sa")]
    nodes = [helper.make_node("QuantizeLinear", ["a", "sa", "za"], ["aq"]),
             helper.make_node("DequantizeLinear", ["aq", "sa", "za"], ["ad"]),
             helper.make_node("DequantizeLinear", ["bq", "s", "zb"], ["bd"]),
             helper.make_node("MatMul", ["ad", "bd"], ["c"])]
    graph = helper.make_graph(nodes, "matmul_int8", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def matmul_peak(runtime: str = "onnxruntime", precision: str = "fp32", n: int = 2048, threads: int | None = None,
                repeats: int = 10) -> float:
    """GFLOP/s (GOP/s for INT8) of an n x n x n MatMul in `precision` ("fp32", "int8", or OpenVINO's "bf16")
    through `runtime` ("onnxruntime" or "openvino"), best of `repeats`: the peak a row of that runtime and
    precision is held to."""
    model = _matmul_model(n, int8=precision == "int8")
    feed = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    if runtime == "onnxruntime":
        if precision == "bf16":
            raise ValueError("ONNX Runtime's CPU provider has no BF16 MatMul")
        sess = _session(model, threads)
        run = lambda: sess.run(None, {"a": feed})  # noqa: E731
    else:
        import openvino as ov

        core = ov.Core()
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        request = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU", config)\
            .create_infer_request()
        run = lambda: request.infer({0: feed})  # noqa: E731
    return 2 * n**3 / _best_seconds(run, repeats) / 1e9


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
