"""ONNX read and edited at the protobuf wire level (no onnx package on a device), checked against the onnx package
and ONNX Runtime here."""
import numpy as np
import pytest

from vanexport.errors import VanexportError
from vanexport.formats.onnx_metadata import read_metadata
from vanexport.formats.onnx_wire import metadata_from_file, metadata_props, with_softmax_output


def test_metadata_equals_what_onnx_reads(b0_onnx_64):
    import onnx

    proto = onnx.load(str(b0_onnx_64), load_external_data=False)
    assert metadata_props(b0_onnx_64) == {p.key: p.value for p in proto.metadata_props}
    assert metadata_from_file(b0_onnx_64) == read_metadata(b0_onnx_64)


def test_softmax_output_is_a_valid_model_that_computes_the_softmax(b0_onnx_64, tmp_path):
    import onnx

    from vanexport.device.classify import softmax
    from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend

    meta = metadata_from_file(b0_onnx_64)
    meta.output_name = "probabilities"
    out = tmp_path / "soft.onnx"
    with_softmax_output(b0_onnx_64, out, "probabilities", meta)
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == ["probabilities"]
    node = model.graph.node[-1]
    assert (node.op_type, list(node.input), list(node.output)) == ("Softmax", ["logits"], ["probabilities"])
    assert onnx.helper.get_attribute_value(node.attribute[0]) == 1
    assert read_metadata(model) == meta
    source = onnx.load(str(b0_onnx_64))
    assert len(model.graph.node) == len(source.graph.node) + 1 and model.graph.initializer == source.graph.initializer
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(OnnxRuntimeBackend(out)(x), softmax(OnnxRuntimeBackend(b0_onnx_64)(x)), atol=1e-6)


def test_files_that_are_not_onnx(tmp_path, b0_onnx_64):
    bad = tmp_path / "bad.onnx"
    for data in (b"\xff" * 40, b"\x3a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", b"\x0a\x10abc"):
        bad.write_bytes(data)
        with pytest.raises(VanexportError, match="is not a readable ONNX file"):
            metadata_props(bad)
    bad.write_bytes(b"")
    with pytest.raises(VanexportError, match="no vanexport metadata"):
        metadata_from_file(bad)
    with pytest.raises(VanexportError, match="is a folder"):
        metadata_props(tmp_path)
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(b0_onnx_64.read_bytes()[:100_000])
    with pytest.raises(VanexportError, match="is not a readable ONNX file"):
        with_softmax_output(truncated, tmp_path / "x.onnx", "p")


def test_external_data_is_refused(tmp_path, b0_onnx_64):
    import onnx

    model = onnx.load(str(b0_onnx_64))
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="ext.data", size_threshold=1024)
    assert metadata_from_file(path) == read_metadata(b0_onnx_64)  # the metadata is still in the file
    with pytest.raises(VanexportError, match="keeps its weights in external data files"):
        with_softmax_output(path, tmp_path / "soft.onnx", "probabilities")


def test_the_external_data_walk_knows_every_place_a_tensor_can_lie():
    """The reader's table, against onnx.proto as the onnx package compiles it: from ModelProto, every message field
    that can (transitively) hold a TensorProto is followed, to the message it holds."""
    from onnx import onnx_ml_pb2

    from vanexport.formats.onnx_wire import _CHILDREN

    kinds = {"ModelProto": "model", "GraphProto": "graph", "NodeProto": "node", "AttributeProto": "attribute",
             "TensorProto": "tensor", "SparseTensorProto": "sparse", "FunctionProto": "function",
             "TrainingInfoProto": "training_info"}

    def holds_tensors(descriptor, seen=()) -> bool:
        if descriptor.name == "TensorProto":
            return True
        return any(f.message_type is not None and f.message_type.name not in seen
                   and holds_tensors(f.message_type, (*seen, descriptor.name)) for f in descriptor.fields)

    expected, todo = {}, [onnx_ml_pb2.ModelProto.DESCRIPTOR]
    while todo:
        d = todo.pop()
        if kinds[d.name] in expected or d.name == "TensorProto":
            continue
        expected[kinds[d.name]] = {f.number: kinds[f.message_type.name] for f in d.fields
                                   if f.message_type is not None and holds_tensors(f.message_type)}
        todo += [f.message_type for f in d.fields if f.message_type is not None and holds_tensors(f.message_type)]
    followed = {kind: {n: child for n, child in children.items() if child in kinds.values()}
                for kind, children in _CHILDREN.items() if kind != "tensor"}
    assert followed == expected


def test_external_data_anywhere_is_found(tmp_path, b0_onnx_64):
    """A location in an initializer, a Constant's value, a subgraph (If), a function and a sparse initializer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from vanexport.formats.onnx_wire import external_data_locations

    def outside(name, location):
        t = numpy_helper.from_array(np.zeros(2, np.float32), name)
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value=location)
        return t

    model = onnx.load(str(b0_onnx_64))
    assert external_data_locations(b0_onnx_64) == []
    model.graph.initializer.append(outside("a", "init.bin"))
    model.graph.node.append(helper.make_node("Constant", [], ["c"], value=outside("c", "/etc/passwd")))
    branch = helper.make_graph([helper.make_node("Constant", [], ["o"], value=outside("o", "../branch.bin"))], "b",
                               [], [helper.make_tensor_value_info("o", TensorProto.FLOAT, [2])])
    model.graph.node.append(helper.make_node("If", ["cond"], ["r"], then_branch=branch, else_branch=branch))
    model.functions.append(helper.make_function("local", "f", [], ["y"], [helper.make_node(
        "Constant", [], ["y"], value=outside("y", "function.bin"))], [helper.make_opsetid("", 17)]))
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(
        outside("v", "sparse.bin"), numpy_helper.from_array(np.array([0, 1], np.int64), "i"), [4]))
    path = tmp_path / "anywhere.onnx"
    path.write_bytes(model.SerializeToString())
    assert external_data_locations(path) == sorted(
        ["init.bin", "/etc/passwd", "../branch.bin", "function.bin", "sparse.bin"])


@pytest.mark.parametrize("in_type, out_type", [("FLOAT", "FLOAT"), ("FLOAT16", "FLOAT16"), ("FLOAT16", "FLOAT")])
def test_io_dtypes_as_onnx_reads_them(tmp_path, in_type, out_type):
    """The reference is the onnx package's own reading of the graph, mapped by onnx.helper."""
    import onnx
    from onnx import TensorProto, helper

    from vanexport.formats.onnx_wire import io_dtypes

    it, ot = getattr(TensorProto, in_type), getattr(TensorProto, out_type)
    bias = helper.make_tensor("bias", it, [1], [1.0])  # an initializer listed among the inputs, as old exporters did
    graph = helper.make_graph(
        [helper.make_node("Add", ["pixels", "bias"], ["sum"]), helper.make_node("Cast", ["sum"], ["logits"], to=ot)],
        "g", [helper.make_tensor_value_info("pixels", it, [1, 3]), helper.make_tensor_value_info("bias", it, [1])],
        [helper.make_tensor_value_info("logits", ot, [1, 3])], [bias])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), path)
    model = onnx.load(path)
    dtype = {vi.name: str(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)) for vi in
             list(model.graph.input) + list(model.graph.output)}
    inputs, outputs = io_dtypes(path)
    assert inputs == {"pixels": dtype["pixels"]} and outputs == {"logits": dtype["logits"]}
