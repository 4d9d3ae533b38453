"""The pure parts around TensorRT calls: profile checks at run time, parser errors node by node, the engine
inspector's layer table, and the inputs a plan is validated on."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from vanexport.errors import VanexportError
from vanexport.runtime.tensorrt_backend import check_in_profile
from vanexport.runtime.tensorrt_engine import layer_rows, member_name
from vanexport.trt.builder import describe_parser_error
from vanexport.check.inputs import InputGroup, groups_within_profile
from vanexport.formats.engine_manifest import Profile

PROFILE = Profile([1, 3, 224, 224], [8, 3, 224, 224], [32, 3, 224, 224])


def test_shapes_inside_the_profile_pass():
    for shape in [(1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 224, 224)]:
        check_in_profile(shape, PROFILE)


@pytest.mark.parametrize("shape, hint", [
    ((33, 3, 224, 224), "send at most 32 images per call, or rebuild the engine with --max-batch 33"),
    ((2, 3, 256, 256), "resize the images to 224x224"),
    ((3, 224, 224), "pass a 4-D NCHW batch"),
])
def test_a_request_outside_the_profile_names_the_profile(shape, hint):
    with pytest.raises(VanexportError) as e:
        check_in_profile(shape, PROFILE, "input")
    assert e.value.problem == (f"input 'input' of shape {'x'.join(map(str, shape))} is outside the engine's "
                               "optimization profile (min 1x3x224x224, opt 8x3x224x224, max 32x3x224x224)")
    assert e.value.hint.startswith(hint)
    with pytest.raises(VanexportError, match="send at least 4 images per call"):
        check_in_profile((2, 3, 224, 224), Profile([4, 3, 224, 224], PROFILE.opt, PROFILE.max))


class ParserError:
    """What nvonnxparser's IParserError answers (accessor names checked with trt-api in 10.16 and 11.4)."""

    def __init__(self, node, name, op, desc, code):
        self._v = dict(node=node, node_name=name, node_operator=op, desc=desc, code=code)

    def __getattr__(self, item):
        if item in self._v:
            return lambda: self._v[item]
        raise AttributeError(item)


def test_parser_errors_name_the_node():
    code = SimpleNamespace(name="UNSUPPORTED_NODE")
    err = ParserError(41, "/block1/attn/Conv", "Conv", "Unsupported grouped convolution ", code)
    assert describe_parser_error(err) == "node 41 '/block1/attn/Conv' (Conv): Unsupported grouped convolution [UNSUPPORTED_NODE]"
    assert describe_parser_error(ParserError(-1, "", "", "Invalid model", code)) == "model: Invalid model [UNSUPPORTED_NODE]"

    class Opaque:  # a parser without the accessors: its own text is used
        def __str__(self):
            return "In node 3 (parse): INVALID_NODE\n"

    assert describe_parser_error(Opaque()) == "In node 3 (parse): INVALID_NODE"


def test_enum_member_names():
    assert member_name(SimpleNamespace(name="HALF")) == "HALF"

    class PybindLike:
        name = None

        def __str__(self):
            return "DataType.FLOAT"

    assert member_name(PybindLike()) == "FLOAT"


def test_layer_table_from_engine_inspector_json():
    """IEngineInspector JSON as TensorRT 10 writes it ("Format/Datatype") and as 11 does ("Datatype" + "Format")."""
    info = {"Layers": [
        {"Name": "/patch_embed1/proj/Conv + /patch_embed1/norm/BatchNormalization", "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "input", "Format/Datatype": "Row major linear FP32 format"}],
         "Outputs": [{"Name": "t0", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}],
         "TacticName": "sm80_xmma_fprop_implicit_gemm_f16f16", "TacticValue": "0x5e1c"},
        {"Name": "/head/Gemm", "LayerType": "Gemm", "Outputs": [{"Name": "logits", "Datatype": "Float", "Format": "Row major linear"}],
         "TacticValue": "0x0000000000000001"},
        {"Name": "quantize", "LayerType": "Scale", "Outputs": [{"Name": "q", "Datatype": "Int8"}, {"Name": "s", "Datatype": "FP32"}]},
    ], "Bindings": ["input", "logits"]}
    rows = layer_rows(json.dumps(info))
    assert [r["precision"] for r in rows] == ["fp16", "fp32", "int8,fp32"]
    assert rows[0]["tactic"] == "sm80_xmma_fprop_implicit_gemm_f16f16" and rows[1]["tactic"] == "0x0000000000000001"
    assert rows[1]["type"] == "Gemm" and rows[0]["name"].startswith("/patch_embed1/proj/Conv")
    # built without ProfilingVerbosity.DETAILED: layer names only
    assert layer_rows(json.dumps({"Layers": ["a", "b"]})) == [
        {"name": "a", "type": "", "precision": "", "tactic": ""}, {"name": "b", "type": "", "precision": "", "tactic": ""}]


def test_validation_inputs_are_recut_to_the_engine_profile():
    rng = np.random.default_rng(0)
    groups = [InputGroup("random b1 224x224", [rng.normal(size=(1, 3, 224, 224)) for _ in range(2)]),
              InputGroup("random b3 224x224", [rng.normal(size=(3, 3, 224, 224)) for _ in range(2)]),
              InputGroup("random b3 160x160", [rng.normal(size=(3, 3, 160, 160))]),
              InputGroup("photos 224x224", [rng.normal(size=(4, 3, 224, 224)), rng.normal(size=(4, 3, 224, 224))])]
    out = groups_within_profile(groups, Profile([2, 3, 224, 224], [2, 3, 224, 224], [2, 3, 224, 224]))
    assert [g.label for g in out] == ["random b1 224x224", "random b3 224x224", "photos 224x224"]
    for g, original in zip(out, [groups[0], groups[1], groups[3]]):
        assert all(b.shape[0] == 2 for b in g.batches)
        flat = np.concatenate(g.batches)
        n = sum(len(b) for b in original.batches)
        assert np.array_equal(flat[:n], np.concatenate(original.batches))  # same images, in order
        assert all(np.array_equal(x, flat[n - 1]) for x in flat[n:])  # padding repeats the last image
        assert g.size == n  # and is not counted in the metrics
    wide = groups_within_profile(groups, Profile([1, 3, 128, 128], [8, 3, 224, 224], [32, 3, 256, 256]))
    assert [len(g.batches[0]) for g in wide] == [1, 3, 3, 4]  # the original batching, all sizes kept
