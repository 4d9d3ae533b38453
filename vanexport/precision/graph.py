"""Small ONNX graph edits the precision converters need: node selection by op type or name pattern,
Constant nodes turned into initializers, and topological order (TensorRT's parser reads nodes in order)."""
from __future__ import annotations

import re

from ..errors import VanexportError

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")  # the ops INT8 quantizes (inputs and weights)


def select_nodes(graph, patterns) -> list[str]:
    """Names of the nodes whose op type equals a pattern, or whose name matches it as a regex (re.search)."""
    names = []
    compiled = []
    for p in patterns:
        try:
            compiled.append((p, re.compile(p)))
        except re.error as e:
            raise VanexportError(f"'{p}' is not a valid regular expression ({e})",
                                 "pass an op type (e.g. LayerNormalization) or a node-name regex") from e
    for node in graph.node:
        if any(node.op_type == p or rx.search(node.name) for p, rx in compiled):
            names.append(node.name)
    return names


def unmatched(graph, patterns) -> list[str]:
    """The patterns that select no node (almost always a typo the user wants to hear about)."""
    return [p for p in patterns if not select_nodes(graph, [p])]


def constants_to_initializers(model) -> None:
    """Move the tensors of Constant nodes into initializers, in place.

    onnxsim folds VAN's layer scales into some conv weights and emits them as Constant nodes; a quantizer
    treats those as activations (per-tensor, calibrated) instead of weights (per-channel). As initializers
    they are weights again."""
    keep = []
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensor = node.attribute[0].t
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)


def topological_sort(graph) -> None:
    """Reorder nodes so each comes after the producers of its inputs (stable: keeps the order where it can)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        progressed = False
        rest = []
        for node in pending:
            if all(i in available for i in node.input):
                ordered.append(node)
                available.update(node.output)
                progressed = True
            else:
                rest.append(node)
        if not progressed:
            raise RuntimeError("the graph has a cycle or a dangling input: " + ", ".join(n.name for n in rest[:3]))
        pending = rest
    nodes = [type(n)() for n in ordered]
    for new, old in zip(nodes, ordered):
        new.CopyFrom(old)
    del graph.node[:]
    graph.node.extend(nodes)


def module_groups(graph, depth: int, op_types=None) -> dict[str, list[str]]:
    """Group node names by their module path (`/block1.0/attn/proj_1/Conv` at depth 2 -> `/block1.0/attn`).

    The TorchScript exporter names nodes after the PyTorch modules, so a group is a module of the model.
    Only nodes of `op_types` (all when None) are grouped; unnamed nodes are left out."""
    groups: dict[str, list[str]] = {}
    for node in graph.node:
        if op_types is not None and node.op_type not in op_types:
            continue
        parts = [p for p in node.name.split("/") if p]
        if len(parts) < 2:
            continue
        key = "/" + "/".join(parts[:min(depth, len(parts) - 1)])
        groups.setdefault(key, []).append(node.name)
    return groups


def group_regex(group: str) -> str:
    """A node-name regex that selects exactly one module group (what --exclude / --keep-fp32 take)."""
    return "^" + re.escape(group + "/")
