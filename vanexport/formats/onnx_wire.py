"""An ONNX file read and edited at the protobuf wire level, without the `onnx` package: what a device needs.

A device install has no `onnx` (it comes with the export extra), yet building an engine there needs the file's
vanexport metadata, and `vanexport deepstream` appends a Softmax to the bundle's ONNX. Both touch only a few
top-level fields of the ModelProto (onnx.proto field numbers below), so everything else is copied byte for byte.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import VanexportError
from ..files import regular_file
from .onnx_metadata import ModelMetadata

# onnx.proto field numbers
MODEL_GRAPH, MODEL_METADATA = 7, 14
ENTRY_KEY, ENTRY_VALUE = 1, 2
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_OUTPUT = 1, 5, 12
NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP_TYPE, NODE_ATTRIBUTE = 1, 2, 3, 4, 5
ATTR_NAME, ATTR_I, ATTR_TYPE, ATTR_TYPE_INT = 1, 3, 20, 2
VALUE_INFO_NAME = 1
TENSOR_DATA_LOCATION, EXTERNAL = 14, 1
VARINT, I64, LEN, I32 = 0, 1, 2, 5
HINT = "export it again with `vanexport onnx`"


class WireError(ValueError):
    pass


def _varint(read) -> int | None:
    """A base-128 varint from `read(1)`; None at a clean end of input."""
    value, shift = 0, 0
    while True:
        b = read(1)
        if not b:
            if shift:
                raise WireError("truncated varint")
            return None
        value |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(buf: bytes):
    """(field number, wire type, value: int or bytes, the field's own bytes) for each field of a message."""
    pos, n = 0, len(buf)

    def read(k):
        nonlocal pos
        chunk = buf[pos:pos + k]
        pos += len(chunk)
        return chunk

    while pos < n:
        start = pos
        tag = _varint(read)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == VARINT:
            value = _varint(read)
            if value is None:
                raise WireError("truncated field")
        elif wire in (I64, I32):
            value = read(8 if wire == I64 else 4)
            if len(value) != (8 if wire == I64 else 4):
                raise WireError("truncated field")
        elif wire == LEN:
            length = _varint(read)
            if length is None or pos + length > n:
                raise WireError("a field runs past the end")
            value = read(length)
        else:
            raise WireError(f"wire type {wire}")
        yield number, wire, value, buf[start:pos]


def _field(number: int, value) -> bytes:
    if isinstance(value, int):
        return _encode_varint(number << 3 | VARINT) + _encode_varint(value)
    data = value.encode() if isinstance(value, str) else bytes(value)
    return _encode_varint(number << 3 | LEN) + _encode_varint(len(data)) + data


def _strings(buf: bytes, number: int) -> list[str]:
    return [v.decode() for k, w, v, _ in _fields(buf) if k == number and w == LEN]


def _top_level_metadata(f, size: int) -> dict[str, str]:
    """metadata_props of the ModelProto in file `f`, seeking past every other top-level field (the graph)."""
    props = {}
    while True:
        tag = _varint(f.read)
        if tag is None:
            return props
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == VARINT:
            if _varint(f.read) is None:
                raise WireError("truncated field")
        elif wire in (I64, I32):
            f.seek(8 if wire == I64 else 4, os.SEEK_CUR)
        elif wire == LEN:
            length = _varint(f.read)
            if length is None or f.tell() + length > size:
                raise WireError("a field runs past the end")
            if number == MODEL_METADATA:
                entry = f.read(length)
                keys, values = _strings(entry, ENTRY_KEY), _strings(entry, ENTRY_VALUE)
                props[keys[0] if keys else ""] = values[0] if values else ""
            else:
                f.seek(length, os.SEEK_CUR)
        else:
            raise WireError(f"wire type {wire}")
        if f.tell() > size:
            raise WireError("a field runs past the end")


def metadata_props(path) -> dict[str, str]:
    """An ONNX file's metadata_props, read without loading the graph (or the onnx package)."""
    path = regular_file(path, "model file", "pass an .onnx file made by `vanexport onnx`")
    try:
        with open(path, "rb") as f:
            return _top_level_metadata(f, os.fstat(f.fileno()).st_size)
    except (WireError, UnicodeDecodeError) as e:
        raise VanexportError(f"'{path}' is not a readable ONNX file ({e})", HINT) from e


def metadata_from_file(path) -> ModelMetadata:
    """The vanexport metadata of an ONNX file (what `onnx_metadata.read_metadata` gives, without onnx)."""
    return ModelMetadata.from_props(metadata_props(path))


# TensorProto.DataType -> numpy's spelling, for the types a classifier's inputs and outputs have
ELEM_TYPES = {1: "float32", 10: "float16", 16: "bfloat16", 11: "float64", 2: "uint8", 3: "int8", 6: "int32", 7: "int64"}
GRAPH_INPUT, VALUE_INFO_TYPE, TYPE_TENSOR, TENSOR_ELEM_TYPE = 11, 2, 1, 1


def io_dtypes(path) -> tuple[dict[str, str], dict[str, str]]:
    """({graph input name: dtype}, {graph output name: dtype}) of an ONNX file, dtypes in numpy's spelling
    ("float16" for a file converted without keep_io_types), read at the wire level: no onnx package needed.
    Initializers listed among the inputs (old exporters) are left out."""
    path = regular_file(path, "model file", "pass an .onnx file made by `vanexport onnx`")

    def dtype(value_info: bytes) -> str:
        for k, w, t, _ in _fields(value_info):
            if k == VALUE_INFO_TYPE and w == LEN:
                for k2, w2, tensor, _ in _fields(t):
                    if k2 == TYPE_TENSOR and w2 == LEN:
                        codes = [v for k3, w3, v, _ in _fields(tensor) if k3 == TENSOR_ELEM_TYPE and w3 == VARINT]
                        return ELEM_TYPES.get(codes[0], f"onnx type {codes[0]}") if codes else "unknown"
        return "unknown"

    try:
        graphs = [v for k, w, v, _ in _fields(Path(path).read_bytes()) if k == MODEL_GRAPH and w == LEN]
        if len(graphs) != 1:
            raise WireError(f"{len(graphs)} graphs")
        graph = list(_fields(graphs[0]))
        weights = {n for k, w, v, _ in graph if k == GRAPH_INITIALIZER and w == LEN for n in _strings(v, 8)}
        ios = {GRAPH_INPUT: {}, GRAPH_OUTPUT: {}}
        for k, w, v, _ in graph:
            if k in ios and w == LEN:
                name = (_strings(v, VALUE_INFO_NAME) or [""])[0]
                if name not in weights:
                    ios[k][name] = dtype(v)
    except (WireError, UnicodeDecodeError) as e:
        raise VanexportError(f"'{path}' is not a readable ONNX file ({e})", HINT) from e
    return ios[GRAPH_INPUT], ios[GRAPH_OUTPUT]


def with_softmax_output(src, dst, output: str, meta: ModelMetadata | None = None) -> None:
    """Copy the single-output ONNX model `src` to `dst` with Softmax(axis=1) after that output, which becomes
    the model's only output under the name `output`; its metadata is replaced by `meta` (sorted, as
    `onnx_metadata.write_metadata` writes it). Everything else is copied byte for byte."""
    src = regular_file(src, "model file", "pass an .onnx file made by `vanexport onnx`")
    data = Path(src).read_bytes()
    try:
        model = list(_fields(data))
        graphs = [v for k, w, v, _ in model if k == MODEL_GRAPH and w == LEN]
        if len(graphs) != 1:
            raise WireError(f"{len(graphs)} graphs")
        graph = list(_fields(graphs[0]))
        outputs = [v for k, w, v, _ in graph if k == GRAPH_OUTPUT and w == LEN]
        if len(outputs) != 1:
            raise WireError(f"the graph has {len(outputs)} outputs, not one")
        if next(_external_locations(data, "model"), None) is not None:  # anywhere, not only in initializers
            raise VanexportError(f"'{src}' keeps its weights in external data files",
                                 "export it as a single file (models under 2 GB are)")
        names = _strings(outputs[0], VALUE_INFO_NAME)
        logits = names[0] if names else ""
    except (WireError, UnicodeDecodeError) as e:
        raise VanexportError(f"'{src}' is not a readable ONNX file ({e})", HINT) from e
    axis = _field(ATTR_NAME, "axis") + _field(ATTR_I, 1) + _field(ATTR_TYPE, ATTR_TYPE_INT)
    node = (_field(NODE_INPUT, logits) + _field(NODE_OUTPUT, output) + _field(NODE_NAME, "vanexport_softmax")
            + _field(NODE_OP_TYPE, "Softmax") + _field(NODE_ATTRIBUTE, axis))
    renamed = _field(VALUE_INFO_NAME, output) + b"".join(raw for k, _, _, raw in _fields(outputs[0])
                                                         if k != VALUE_INFO_NAME)
    new_graph = b"".join(raw for k, _, _, raw in graph if k != GRAPH_OUTPUT) + _field(GRAPH_NODE, node) \
        + _field(GRAPH_OUTPUT, renamed)
    out = bytearray()
    for k, _, _, raw in model:
        if k == MODEL_GRAPH:
            out += _field(MODEL_GRAPH, new_graph)
        elif k != MODEL_METADATA or meta is None:
            out += raw
    if meta is not None:
        for key, value in sorted(meta.to_props().items()):
            out += _field(MODEL_METADATA, _field(ENTRY_KEY, key) + _field(ENTRY_VALUE, value))
    Path(dst).write_bytes(bytes(out))


# Where a TensorProto can lie in an ONNX model: message -> {field number: the message it holds} (onnx.proto).
_HOLDS_TENSORS = {
    "model": {7: "graph", 20: "training_info", 25: "function"},
    "training_info": {1: "graph", 2: "graph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse_tensor"},
    "function": {7: "node", 11: "attribute"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse_tensor", 23: "sparse_tensor"},
    "sparse_tensor": {1: "tensor", 2: "tensor"},
}
TENSOR_EXTERNAL_DATA, _MAX_NESTING = 13, 64


def _external_locations(buf, kind: str, depth: int = 0):
    if depth > _MAX_NESTING:
        raise WireError("graphs nested too deeply")
    if kind == "tensor":
        entries = [dict((k, bytes(v).decode()) for k, w, v, _ in _fields(e) if w == LEN)
                   for k, w, e, _ in _fields(buf) if k == TENSOR_EXTERNAL_DATA and w == LEN]
        external = any(k == TENSOR_DATA_LOCATION and w == VARINT and v == EXTERNAL for k, w, v, _ in _fields(buf))
        if external or entries:
            yield next((e.get(ENTRY_VALUE, "") for e in entries if e.get(ENTRY_KEY) == "location"), "")
        return
    for number, wire, value, _ in _fields(buf):
        inner = _HOLDS_TENSORS[kind].get(number)
        if inner and wire == LEN:
            yield from _external_locations(value, inner, depth + 1)


def external_data_locations(path) -> list[str]:
    """The external data files that the tensors of ONNX file `path` name, wherever they lie (initializers, constant
    and function attributes, subgraphs, sparse and training tensors): a runtime that loads the file opens each of
    them, relative to the file's folder or absolute. An external tensor without a location gives ''."""
    path = regular_file(path, "model file", "pass an .onnx file made by `vanexport onnx`")
    try:
        return sorted(set(_external_locations(Path(path).read_bytes(), "model")))
    except (WireError, UnicodeDecodeError) as e:
        raise VanexportError(f"'{path}' is not a readable ONNX file ({e})", HINT) from e
