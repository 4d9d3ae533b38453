"""The one rule for strings, numbers and records from outside (vanexport/formats/fields.py), case by case."""
import pytest

from vanexport.formats import fields

LINE_BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x85", "\u2028", "\u2029"]  # all that str.splitlines() splits on


@pytest.mark.parametrize("value", ["b0", "b3", "b6"])
def test_variants_accepted(value):
    assert fields.variant_name(value) == value


@pytest.mark.parametrize("value", ["b7", "B0", "van_b0", "tiny", "b0\n", "b0\n[property]", 'b0"""', "b0/../../x",
                                   "", None, 0, ["b0"]])
def test_variants_refused(value):
    with pytest.raises(ValueError, match="model.variant .* is not one of b0, b1, b2, b3, b4, b5, b6"):
        fields.variant_name(value, "model.variant")


@pytest.mark.parametrize("value", ["input", "logits", "input.1", "onnx::Gemm_0", "pixel_values", "x-y", "_",
                                   "a" * 128])
def test_tensor_names_accepted(value):
    assert fields.tensor_name(value) == value


@pytest.mark.parametrize("value", ["a" * 129, "", "1input", ".input", "in put", 'in"put', "in}put", "in]put",
                                   "in;put", "in/put", "in\\put", "in#put", "inpüt", None, 3]
                         + [f"input{b}x" for b in LINE_BREAKS] + ["input\x00"])
def test_tensor_names_refused(value):
    with pytest.raises(ValueError, match="io.input.name .* is not a plain tensor name"):
        fields.tensor_name(value, "io.input.name")


@pytest.mark.parametrize("value", ["van_b0", "model.onnx", "a-b.c_d", "0", "a" * 100])
def test_path_parts_accepted(value):
    assert fields.path_part(value) == value


@pytest.mark.parametrize("value", ["a" * 101, "", ".", "..", ".hidden", "a/b", "../x", "/etc", "a\\b", "C:x",
                                   "a b", "a\x00", "-rf", None] + [f"a{b}b" for b in LINE_BREAKS])
def test_path_parts_refused(value):
    with pytest.raises(ValueError, match="is not a plain name"):
        fields.path_part(value)


@pytest.mark.parametrize("value", ["tench, Tinca tinca", "café au lait", "日本", "a [red]b[/] c", "x" * 512, ""])
def test_one_line_accepted(value):
    assert fields.one_line(value) == value


@pytest.mark.parametrize("value", [f"a{b}b" for b in LINE_BREAKS] + ["a\tb", "\x1b[31mred", "a\x00", "a\x7f",
                                                                     "a\x9bb", "x" * 513, None, 5])
def test_one_line_refused(value):
    with pytest.raises(ValueError, match="is not one line of printable text of at most 512 characters"):
        fields.one_line(value)


def test_whole_numbers():
    assert fields.whole_number(1, "n") == 1 and fields.whole_number(65536, "n") == 65536
    for bad in (0, -1, 65537, 100000, True, 1.0, "3", None):
        with pytest.raises(ValueError, match="model.num_classes .* is not a whole number from 1 to 65536"):
            fields.whole_number(bad, "model.num_classes")


def test_finite_numbers():
    assert fields.finite_number(0, "x", 0, 1) == 0.0 and fields.finite_number(0.5, "x", 0, 1) == 0.5
    for bad in (float("nan"), float("inf"), -float("inf"), -0.01, 1.01, True, "0.5", None):
        with pytest.raises(ValueError, match="mean is not a number from 0 to 1|mean .* is not a number from 0 to 1"):
            fields.finite_number(bad, "mean", 0, 1)


def _van(**changes) -> dict:
    d = {"input_size": 224, "resize_size": 248, "crop_pct": 0.9, "interpolation": "bicubic", "mean": [0.5, 0.5, 0.5],
         "std": [0.5, 0.5, 0.5], "color": "RGB", "layout": "NCHW", "scale": "1/255"}
    d.update(changes)
    return {k: v for k, v in d.items() if v is not None}


def test_van_preprocessing_is_accepted():
    from vanexport.model.variants import Preprocessing

    assert fields.preprocessing(_van()) == Preprocessing().to_dict()  # the record our exporter writes
    assert fields.preprocessing(_van(input_size=64, resize_size=71)) == Preprocessing(64).to_dict()
    imagenet = _van(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], crop_pct=0.875, resize_size=256,
                    interpolation="bilinear")
    assert fields.preprocessing(imagenet) is imagenet
    assert fields.preprocessing(_van(resize_size=None, color=None, layout=None, scale=None))  # optional keys


@pytest.mark.parametrize("changes, field", [
    (dict(std=[0.5, 0, 0.5]), r"preprocessing.std\[1\] 0 "),
    (dict(std=[0.5, 0.5, float("nan")]), r"preprocessing.std\[2\] nan"),
    (dict(std=[0.5, 0.5, -0.5]), r"preprocessing.std\[2\]"),
    (dict(std=[0.5, 0.5]), "preprocessing.std is not a list of 3"),
    (dict(std="0.5"), "preprocessing.std is not a list of 3"),
    (dict(mean=[1.5, 0.5, 0.5]), r"preprocessing.mean\[0\] 1.5"),
    (dict(mean=[0.5, float("inf"), 0.5]), r"preprocessing.mean\[1\] inf"),
    (dict(interpolation="lanczos"), "preprocessing.interpolation 'lanczos' is not one of bicubic, bilinear, nearest"),
    (dict(interpolation="bicubic\n[property]"), "preprocessing.interpolation"),
    (dict(interpolation=None), "preprocessing has no 'interpolation'"),
    (dict(input_size=0), "preprocessing.input_size 0"),
    (dict(input_size=65, resize_size=72), "preprocessing.input_size 65 is not a multiple of 32"),
    (dict(input_size=224.0), "preprocessing.input_size 224.0"),
    (dict(input_size=1 << 20), "preprocessing.input_size"),
    (dict(crop_pct=0), "preprocessing.crop_pct 0"),
    (dict(crop_pct=2.0), "preprocessing.crop_pct 2.0"),
    (dict(resize_size=0), "preprocessing.resize_size 0 is not floor"),
    (dict(color="BGR"), "preprocessing.color 'BGR' is not 'RGB'"),
    (dict(scale="1"), "preprocessing.scale"),
    (dict(extra="x"), "preprocessing has the unknown key 'extra'"),
])
def test_preprocessing_out_of_range_is_refused(changes, field):
    with pytest.raises(ValueError, match=field):
        fields.preprocessing(_van(**changes))


@pytest.mark.parametrize("interpolation", fields.INTERPOLATIONS)
def test_every_accepted_interpolation_is_one_the_transform_resizes_with(interpolation):
    """Independent of the transform's own table: each accepted name runs and gives a crop of the asked size, and
    the filters differ from each other on a picture with edges."""
    import numpy as np

    from vanexport.data.preprocess import resize_and_crop
    from vanexport.model.variants import Preprocessing

    picture = (np.indices((50, 70)).sum(0)[..., None] % 7 * 36).repeat(3, -1).astype(np.uint8)
    crops = {name: resize_and_crop(picture, Preprocessing(32, interpolation=name)) for name in fields.INTERPOLATIONS}
    assert crops[interpolation].shape == (32, 32, 3)
    assert all(not np.array_equal(crops[interpolation], c) for n, c in crops.items() if n != interpolation)


def test_class_names():
    assert fields.class_names("tench, Tinca tinca\ngoldfish\n") == ["tench, Tinca tinca", "goldfish"]
    assert len(fields.class_names("x\n" * 65536)) == 65536
    for text, message in (("a\r\nb\n", "line 1 'a\\\\r' is not one line"),
                          ("a\nb\rc\n", "line 2 'b\\\\rc' is not one line"),
                          ("a\nb\u2028c\n", "line 2"),
                          ("a\n\nb\n", "line 2 '' is empty"),
                          ("a\n b\n", "line 2 ' b' is empty or has spaces around it"),
                          ("a\nb", "does not end with a newline"),
                          ("", "does not end with a newline"),
                          ("x\n" * 65537, "has 65537 names, more than the 65536")):
        with pytest.raises(ValueError, match=message):
            fields.class_names(text, "labels.txt")


def test_printable_records():
    record = {"vanexport": "0.1.0", "versions": [{"onnx": "1.17"}], "n": 3, "ok": True, "none": None, "x": 0.5}
    assert fields.printable(record, "created_by") is record
    for bad, where in (({"vanexport": "0.1\n[red]x"}, "created_by.vanexport"),
                       ({"a": [{"b": "x\u2028y"}]}, r"created_by.a\[0\].b"),
                       ({"a\nb": 1}, "a key of created_by"),
                       ({"a": object()}, "created_by.a is not a JSON value")):
        with pytest.raises(ValueError, match=where):
            fields.printable(bad, "created_by")
    deep = "x"
    for _ in range(20):
        deep = [deep]
    with pytest.raises(ValueError, match="nested more than 16 levels"):
        fields.printable(deep, "history")
