"""The small format pieces every artifact depends on: file names (formats/names.py), the record checks
(formats/records.py) and the ONNX metadata record (formats/onnx_metadata.py), on cases written from their
documented rules."""
from pathlib import Path

import pytest

from vanexport.errors import VanexportError
from vanexport.formats import names, records
from vanexport.formats.onnx_metadata import ModelMetadata, load_onnx, read_metadata, write_metadata


# ---- names ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, kwargs, stem", [
    (("b0", 224), {}, "van_b0_224"),
    (("b2", 384, 4), {}, "van_b2_384_bs4"),
    (("b0", 224), {"dynamic_hw": True}, "van_b0_dynhw"),
    (("b1", 224, 8), {"dynamic_hw": True}, "van_b1_dynhw_bs8"),
])
def test_model_stem(args, kwargs, stem):
    assert names.model_stem(*args, **kwargs) == stem


def test_precision_in_names():
    assert names.with_precision("van_b0_224", "fp32") == "van_b0_224"
    assert names.with_precision("van_b0_224", "int8") == "van_b0_224_int8"
    assert names.converted_path("engines/van_b0_224.onnx", "fp16") == Path("engines/van_b0_224_fp16.onnx")
    assert names.converted_path("out/model", "int8") == Path("out/model_int8.onnx")  # no suffix: .onnx


@pytest.mark.parametrize("onnx, precision, folder, plan", [
    ("x/van_b0_224_fp16.onnx", "fp16", None, "engines/van_b0_224_fp16.plan"),  # already says it
    ("van_b0_224.onnx", "fp32", None, "engines/van_b0_224_fp32.plan"),
    ("van_b0_224.onnx", "fp16", "out", "out/van_b0_224_fp16.plan"),  # weak typing from the FP32 file
    ("van_b0_224_int8.onnx", "int8", "out", "out/van_b0_224_int8.plan"),
])
def test_plan_names_always_say_their_precision(onnx, precision, folder, plan):
    got = names.plan_path(onnx, precision) if folder is None else names.plan_path(onnx, precision, Path(folder))
    assert got == Path(plan)


@pytest.mark.parametrize("name, kind", [
    ("m.onnx", "onnx"), ("dir/M.ONNX", "onnx"), ("e.plan", "plan"), ("e.engine", "plan"), ("e.TRT", "plan"),
    ("b.tar.gz", "bundle"), ("b.tgz", "bundle"), ("b.tar", None), ("m.onnx.txt", None), ("plan", None),
])
def test_kind_of(name, kind):
    assert names.kind_of(name) == kind


# ---- records ----------------------------------------------------------------------------------------------------

def test_require():
    d = {"a": 1, "b": 0}
    assert records.require(d, ["a", "b"], "manifest") is d
    with pytest.raises(ValueError, match=r"^manifest has no 'a'$"):  # the first missing one
        records.require({}, ["a", "b"], "manifest")
    with pytest.raises(ValueError, match=r"^plan has no 'b'$"):
        records.require({"a": 1, "b": None}, ["a", "b"], "plan")  # null is missing
    with pytest.raises(ValueError, match=r"^gpu is not a JSON object$"):
        records.require(["a"], ["a"], "gpu")


@pytest.mark.parametrize("name", ["model.onnx", "engines/a10/van_b0_fp16.plan", "a.b/c..d"])
def test_member_paths_accepted(name):
    assert records.member_path(name) == name


@pytest.mark.parametrize("name, why", [
    ("", "is not a file name"), (None, "is not a file name"), (3, "is not a file name"),
    ("/etc/passwd", "is an absolute path"), ("\\\\host\\share", "is an absolute path"), ("C:x", "is an absolute path"),
    ("c:x", "is an absolute path"),  # a drive letter in either case
    ("a\\b", "has a backslash or NUL"), ("a\x00b", "has a backslash or NUL"),
    ("../x", "climbs out"), ("a/../b", "climbs out"), ("a/..", "climbs out"),
    ("a/./b", "is not a normalised path"), ("a//b", "is not a normalised path"), ("a/", "is not a normalised path"),
    (".", "is not a normalised path"),
])
def test_member_paths_refused(name, why):
    with pytest.raises(ValueError, match=why):
        records.member_path(name)


def test_sha256_hex():
    digest = "0123456789abcdef" * 4
    assert records.sha256_hex(digest, "plan sha256") == digest
    for bad in (digest.upper(), digest[:-1], digest + "0", "g" * 64, None, 5):
        with pytest.raises(ValueError, match=r"^plan sha256 is not a sha256 digest$"):
            records.sha256_hex(bad, "plan sha256")


# ---- the ONNX metadata record -----------------------------------------------------------------------------------

def metadata(**changes) -> ModelMetadata:
    base = dict(variant="b0", num_classes=10, input_name="input", output_name="logits",
                input_shape=["batch", 3, 64, 64], dynamic_axes={"input": {"0": "batch"}},
                preprocessing={"input_size": 64, "crop_pct": 0.9, "interpolation": "bicubic",
                               "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
                weights_sha256="ab" * 32, weights_source="random(seed=0)", weights_layout="random", opset=17,
                exporter="dynamo", precision="fp16", vanexport_version="0.1.0", extra={"calibration": "x"})
    return ModelMetadata(**{**base, **changes})


def test_props_round_trip_with_strings_kept_as_they_are():
    meta = metadata()
    props = meta.to_props()
    assert props["variant"] == "b0" and props["weights_source"] == "random(seed=0)"  # not JSON-quoted
    assert props["num_classes"] == "10" and props["input_shape"] == '["batch", 3, 64, 64]'
    assert props["calibration"] == "x" and "extra" not in props  # extra keys sit beside the known ones
    assert all(isinstance(v, str) for v in props.values())
    assert ModelMetadata.from_props(props) == meta


def test_shape_properties():
    dynamic = metadata()
    assert (dynamic.img_size, dynamic.dynamic_batch, dynamic.static_batch, dynamic.dynamic_hw) == (64, True, None, False)
    assert dynamic.stem == "van_b0_64" and dynamic.preprocess.input_size == 64 and dynamic.preprocess.crop_pct == 0.9
    static = metadata(input_shape=[4, 3, 64, 64])
    assert (static.dynamic_batch, static.static_batch, static.stem) == (False, 4, "van_b0_64_bs4")
    dyn_hw = metadata(input_shape=["batch", 3, "height", "width"])
    assert dyn_hw.dynamic_hw and dyn_hw.stem == "van_b0_dynhw"


def test_a_file_without_our_metadata():
    props = metadata().to_props()
    for key in ("variant", "preprocessing", "input_name"):
        partial = {k: v for k, v in props.items() if k != key}
        with pytest.raises(VanexportError, match=f"has no vanexport metadata \\(missing {key}\\)"):
            ModelMetadata.from_props(partial)
    with pytest.raises(VanexportError) as e:
        ModelMetadata.from_props({})
    assert e.value.problem == "the ONNX file has no vanexport metadata (missing variant, preprocessing, input_name)"
    assert e.value.hint == "export it with `vanexport onnx`, or pass --variant to say what it is"  # what to do


def test_written_sorted_replacing_what_was_there_and_read_back(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1])])
    proto = helper.make_model(graph)
    helper.set_model_props(proto, {"stale": "1"})
    meta = metadata()
    write_metadata(proto, meta)
    keys = [p.key for p in proto.metadata_props]
    assert keys == sorted(meta.to_props()) and "stale" not in keys
    assert read_metadata(proto) == meta
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    assert read_metadata(path) == meta and read_metadata(str(path)) == meta


def test_unreadable_onnx_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\x00not a protobuf" * 3)
    with pytest.raises(VanexportError, match=r"'.*bad.onnx' is not a readable ONNX file \(") as e:
        load_onnx(bad)
    assert "\n" not in str(e.value.args[0]) and e.value.hint == "export it again with `vanexport onnx`"
    with pytest.raises(VanexportError) as e:
        load_onnx(tmp_path / "missing.onnx")
    assert e.value.problem == f"model file '{tmp_path / 'missing.onnx'}' not found"
    assert e.value.hint == "pass an .onnx file made by `vanexport onnx`"


def test_props_do_not_depend_on_the_order_dicts_were_built_in():
    """Repeated exports are byte-identical: a dict field written in another key order gives the same props."""
    meta = metadata()
    shuffled = metadata(preprocessing=dict(reversed(list(meta.preprocessing.items()))))
    assert list(shuffled.preprocessing) != list(meta.preprocessing)
    assert shuffled.to_props() == meta.to_props()


def test_metadata_is_read_without_the_external_data(tmp_path):
    """A model saved with its weights in a separate file: the metadata is read without opening that file (here it
    is gone, as on a machine that got only the .onnx)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["input", "w"], ["logits"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 64])], [weight])
    proto = helper.make_model(graph)
    write_metadata(proto, metadata())
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path), save_as_external_data=True, location="m.data", size_threshold=0)
    (tmp_path / "m.data").unlink()
    assert read_metadata(path) == metadata()
