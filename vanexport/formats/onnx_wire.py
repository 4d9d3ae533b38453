"""An ONNX file read and edited at the protobuf wire level, without the `onnx` package: what a device needs.

A device install has no `onnx` (it comes with the export extra), yet building an engine there needs the file's
vanexport metadata, and `vanexport deepstream` appends a Softmax to the bundle's ONNX. Both touch only a few
top-level fields of the ModelProto (onnx.proto field numbers below), so everything else is copied byte for byte.
"""
from __future__ import annotations

import io
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
        if read_facts(io.BytesIO(data), len(data)).external_data:  # anywhere, not only in initializers
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


# ---- what a bundle's consistency check needs from each ONNX file, in one forward pass ----

# The messages that can hold a tensor, a graph or the facts below, and which of their fields lead where (onnx.proto).
_CHILDREN = {
    "model": {MODEL_GRAPH: "graph", MODEL_METADATA: "metadata", 20: "training_info", 25: "function"},
    "training_info": {1: "graph", 2: "graph"},
    "graph": {GRAPH_NODE: "node", GRAPH_INITIALIZER: "tensor", 15: "sparse", 11: "input", GRAPH_OUTPUT: "output"},
    "function": {7: "node", 11: "attribute"},
    "node": {NODE_ATTRIBUTE: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {13: "external"},
}
TENSOR_EXTERNAL_DATA, _MAX_NESTING = 13, 64  # deeper nesting of graphs than this is an attack, not a model


class OnnxFacts:
    """An ONNX file's metadata_props, the shapes of its main graph's inputs and outputs (an int per static axis,
    the axis name or None per other), and the file every tensor stored outside it names (`location`)."""

    def __init__(self):
        self.metadata: dict[str, str] = {}
        self.inputs: dict[str, list] = {}
        self.outputs: dict[str, list] = {}
        self.external_data: list[str] = []


class _Stream:
    """A forward-only view of a binary file-like object (a file, or a member of a .tar.gz being read)."""

    def __init__(self, f, size: int):
        self.f, self.pos, self.size = f, 0, size

    def read(self, n: int) -> bytes:
        if self.pos + n > self.size:
            raise WireError("a field runs past the end")
        data = self.f.read(n)
        if len(data) != n:
            raise WireError("the file ends early")
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        if self.pos + n > self.size:
            raise WireError("a field runs past the end")
        self.f.seek(n, os.SEEK_CUR)
        self.pos += n

    def varint(self) -> int:
        value = _varint(lambda k: self.read(k) if self.pos < self.size else b"")
        if value is None:
            raise WireError("truncated field")
        return value


def _read_message(s: _Stream, kind: str, end: int, facts: OnnxFacts, top: bool, depth: int = 0) -> None:
    if depth > _MAX_NESTING:
        raise WireError("messages nested too deeply")
    children = _CHILDREN.get(kind, {})
    location, external = None, False
    while s.pos < end:
        tag = s.varint()
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == VARINT:
            value = s.varint()
            if kind == "tensor" and number == TENSOR_DATA_LOCATION:
                external = value == EXTERNAL
        elif wire in (I64, I32):
            s.skip(8 if wire == I64 else 4)
        elif wire != LEN:
            raise WireError(f"wire type {wire}")
        else:
            length = s.varint()
            if s.pos + length > end:
                raise WireError("a field runs past the end")
            child = children.get(number)
            if child == "external":  # TensorProto.external_data: key "location" names the file
                key, value = _entry(s.read(length))
                location = value if key == "location" else location
            elif child in ("metadata", "input", "output"):  # small messages, read whole
                _leaf(child, s.read(length), facts, top)
            elif child is not None:
                _read_message(s, child, s.pos + length, facts, top and kind == "model", depth + 1)
            else:
                s.skip(length)
    if s.pos != end:
        raise WireError("a message runs past its end")
    if kind == "tensor" and (external or location is not None):
        facts.external_data.append(location or "")


def _entry(data: bytes) -> tuple[str, str]:
    """A StringStringEntryProto's key and value."""
    keys, values = _strings(data, ENTRY_KEY), _strings(data, ENTRY_VALUE)
    return (keys[0] if keys else ""), (values[0] if values else "")


def _leaf(kind: str, data: bytes, facts: OnnxFacts, top: bool) -> None:
    if kind == "metadata":
        key, value = _entry(data)
        facts.metadata[key] = value
        return
    if not top:
        return  # a subgraph's inputs and outputs are not the model's
    names = _strings(data, VALUE_INFO_NAME)
    dims = None
    for number, wire, type_proto, _ in _fields(data):
        if number == 2 and wire == LEN:  # ValueInfoProto.type -> TypeProto.tensor_type -> shape -> dim
            for n1, w1, tensor_type, _ in _fields(type_proto):
                if n1 == 1 and w1 == LEN:
                    for n2, w2, shape, _ in _fields(tensor_type):
                        if n2 == 2 and w2 == LEN:
                            dims = [_dim(d) for n3, w3, d, _ in _fields(shape) if n3 == 1 and w3 == LEN]
    (facts.inputs if kind == "input" else facts.outputs)[names[0] if names else ""] = dims


def _dim(data: bytes):
    for number, wire, value, _ in _fields(data):
        if number == 1 and wire == VARINT:
            return value
        if number == 2 and wire == LEN:
            return value.decode()
    return None


def read_facts(f, size: int) -> OnnxFacts:
    """The facts of the ONNX model in the binary file-like `f` of `size` bytes, read front to back once (seeking
    only forward, past weights), so a member of a compressed archive can be read as it is decompressed.
    WireError or UnicodeDecodeError when it is not an ONNX file."""
    facts = OnnxFacts()
    _read_message(_Stream(f, size), "model", size, facts, True)
    return facts


def facts_from_file(path) -> OnnxFacts:
    """`read_facts` of a file, with a file that is not ONNX as a one-line VanexportError."""
    path = regular_file(path, "model file", "pass an .onnx file made by `vanexport onnx`")
    try:
        with open(path, "rb") as f:
            return read_facts(f, os.fstat(f.fileno()).st_size)
    except (WireError, UnicodeDecodeError) as e:
        raise VanexportError(f"'{path}' is not a readable ONNX file ({e})", HINT) from e


def external_data_locations(path) -> list[str]:
    """The external data files that the tensors of ONNX file `path` name, wherever they lie (initializers, constant
    and function attributes, subgraphs, sparse and training tensors): a runtime that loads the file opens each of
    them, relative to the file's folder or absolute. An external tensor without a location gives ''."""
    return sorted(set(facts_from_file(path).external_data))
