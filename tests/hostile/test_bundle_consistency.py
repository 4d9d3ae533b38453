"""Bundles whose every part is intact (each member matches its sha256 in manifest.json) but whose parts do not
belong together, or whose manifest fields hold what they may not: refused, with one line naming the field, by
every command that opens a bundle, before any part is used. What an attacker or an honest mistake makes."""
import io
import json
import tarfile

import pytest

from .conftest import assert_refused, craft, read_members, run_cli

COMMANDS = {
    "unpack": lambda b: ["unpack", b, "-o", "out/unpacked"],
    "predict": lambda b: ["predict", "photo.png", "--model", b],
    "inspect": lambda b: ["inspect", b],
    "triton": lambda b: ["triton", b, "-o", "out/repo"],
    "deepstream": lambda b: ["deepstream", b, "-o", "out/config_infer.txt"],
}
ONNX = "onnx/van_b0_64_fp32.onnx"  # the FP32 member of the b0 bundle (tests/conftest.py)


@pytest.fixture(scope="module")
def ten_class_onnx(tmp_path_factory):
    """A VAN-b0 with a 10-class head, exported like the bundle's own 1000-class file."""
    import warnings

    from vanexport.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("ten") / "van_b0_64_10.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx("b0", None, num_classes=10, img_size=64, output=out, validate=False)
    return out.read_bytes()


@pytest.fixture
def photo(case):
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).save(case / "photo.png")
    return case / "photo.png"


def _onnx(b0_bundle) -> bytes:
    return read_members(b0_bundle[0])[1][ONNX]


def _with_metadata(onnx_bytes: bytes, **changes) -> bytes:
    """The ONNX file with some of its metadata_props set (values as the exporter stores them: JSON for non-strings),
    edited with the onnx package."""
    import onnx

    model = onnx.load_model_from_string(onnx_bytes)
    for p in model.metadata_props:
        if p.key in changes:
            v = changes[p.key]
            p.value = v if isinstance(v, str) else json.dumps(v)
    return model.SerializeToString()


def _with_external_data(onnx_bytes: bytes, location: str) -> tuple[bytes, bytes]:
    """The ONNX file with its large tensors moved to external data named `location`, and that data file's bytes."""
    import tempfile
    from pathlib import Path

    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        model = onnx.load_model_from_string(onnx_bytes)
        onnx.save_model(model, f"{tmp}/m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                        location="m.data", size_threshold=1024)
        model = onnx.load(f"{tmp}/m.onnx", load_external_data=False)
        for tensor in model.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
        return model.SerializeToString(), Path(f"{tmp}/m.data").read_bytes()


def _model(content_of):
    """A case that replaces the bundle's ONNX member (and fixes its sha256 in models[0] too, so every hash agrees)."""
    def make(b0_bundle, ten_class_onnx):
        files = content_of(b0_bundle, ten_class_onnx)
        return dict(files=files, stub_models=False,
                    mutate=lambda m: m["models"][0].update(sha256=m["files"][ONNX]["sha256"]))
    return make


def _manifest(mutate, **extra):
    return lambda b0_bundle, ten_class_onnx: dict(mutate=mutate, stub_models=False, **extra)


def _labels(lines: list[str]):
    return lambda b0_bundle, ten_class_onnx: dict(files={"labels.txt": ("\n".join(lines) + "\n").encode()},
                                                  stub_models=False)


def _imagenet() -> list[str]:
    from vanexport.data.labels import imagenet_classes

    return imagenet_classes()


def _set(path, value):
    def mutate(m):
        *parents, last = path.split(".")
        node = m
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[int(last) if last.isdigit() else last] = value
    return mutate


# name -> (how to make it from the good bundle, what the one error line must say)
CASES = {
    # labels against classes
    "999 labels for 1000 classes": (_labels(_imagenet()[:999]), "holds 999 names but labels.count"),
    "1001 labels for 1000 classes": (_labels(_imagenet() + ["extra"]), "holds 1001 names but labels.count"),
    "a CR inside a label": (_labels(_imagenet()[:4] + ["gold\rfish"] + _imagenet()[5:]),
                            "labels.file 'labels.txt' line 5 'gold\\rfish' is not one line"),
    "a Unicode line separator in a label": (_labels(_imagenet()[:9] + ["a\u2028b"] + _imagenet()[10:]),
                                            "line 10"),
    "an empty label": (_labels(_imagenet()[:2] + [""] + _imagenet()[3:]), "line 3 '' is empty"),
    "100000 labels": (_labels([f"c{i}" for i in range(100_000)]), "has 100000 names, more than the 65536"),
    "100000 classes claimed": (_manifest(lambda m: (m["model"].update(num_classes=100_000),
                                                    m["labels"].update(count=100_000))),
                               "model.num_classes 100000 is not a whole number from 1 to 65536"),
    "labels.count disagrees": (_manifest(_set("labels.count", 999)), "labels.count 999 is not model.num_classes 1000"),
    # the ONNX file against the manifest
    "a 10-class ONNX in a 1000-class bundle": (_model(lambda b, ten: {ONNX: ten}),
                                               "models[0] ('onnx/van_b0_64_fp32.onnx') answers 10 classes"),
    "metadata variant disagrees": (_model(lambda b, ten: {ONNX: _with_metadata(_onnx(b), variant="b1")}),
                                   "has metadata variant 'b1' but model.variant is 'b0'"),
    "manifest variant disagrees": (_manifest(_set("model.variant", "b2")),
                                   "has metadata variant 'b0' but model.variant is 'b2'"),
    "metadata classes disagree": (_model(lambda b, ten: {ONNX: _with_metadata(_onnx(b), num_classes=10)}),
                                  "has metadata num_classes 10 but model.num_classes is 1000"),
    "metadata weights hash disagrees": (_model(lambda b, ten: {ONNX: _with_metadata(_onnx(b),
                                                                                    weights_sha256="0" * 64)}),
                                        "has metadata weights_sha256 '0000"),
    "metadata image size disagrees": (_model(lambda b, ten: {ONNX: _with_metadata(
        _onnx(b), preprocessing={**json.loads(_meta(b)["preprocessing"]), "input_size": 96, "resize_size": 106})}),
        "has metadata input size 96 but preprocessing.input_size is 64"),
    "metadata precision disagrees": (_model(lambda b, ten: {ONNX: _with_metadata(_onnx(b), precision="fp16")}),
                                     "has metadata precision 'fp16' but models[0].precision is 'fp32'"),
    "metadata output name disagrees": (_model(lambda b, ten: {ONNX: _with_metadata(_onnx(b), output_name="probs")}),
                                       "has metadata output_name 'probs' but io.output.name is 'logits'"),
    "metadata variant injects a line": (_model(lambda b, ten: {ONNX: _with_metadata(_onnx(b),
                                                                                    variant="b0\n[property]")}),
                                        "vanexport metadata: variant 'b0\\n[property]' is not one of"),
    "metadata std 0": (_model(lambda b, ten: {ONNX: _with_metadata(
        _onnx(b), preprocessing={**json.loads(_meta(b)["preprocessing"]), "std": [0, 0, 0]})}),
        "vanexport metadata: preprocessing.std[0] 0 is not a number from 0.01 to 1"),
    # external data
    "external data from an absolute path": (_model(lambda b, ten: {ONNX: _with_external_data(_onnx(b),
                                                                                             "/etc/hostname")[0]}),
                                            "reads weights from outside the bundle: its external data file "
                                            "'/etc/hostname' is not a plain name"),
    "external data up a folder": (_model(lambda b, ten: {ONNX: _with_external_data(_onnx(b), "../labels.txt")[0]}),
                                  "'../labels.txt' is not a plain name"),
    "external data not in the bundle": (_model(lambda b, ten: {ONNX: _with_external_data(_onnx(b), "w.data")[0]}),
                                        "reads weights from 'w.data', which is not a listed file beside it"),
    "external data in another folder of the bundle": (
        _model(lambda b, ten: dict(zip((ONNX, "w.data"), _with_external_data(_onnx(b), "w.data")))),
        "reads weights from 'w.data', which is not a listed file beside it"),
    # manifest fields out of range
    "std 0": (_manifest(_set("preprocessing.std", [0, 0, 0])),
              "manifest.json preprocessing.std[0] 0 is not a number from 0.01 to 1"),
    "std nan": (_manifest(_set("preprocessing.std", [0.5, float("nan"), 0.5])), "preprocessing.std[1] nan"),
    "mean out of range": (_manifest(_set("preprocessing.mean", [127.5, 127.5, 127.5])),
                          "preprocessing.mean[0] 127.5 is not a number from 0 to 1"),
    "unknown interpolation": (_manifest(_set("preprocessing.interpolation", "lanczos")),
                              "preprocessing.interpolation 'lanczos' is not one of bicubic, bilinear, nearest"),
    "resize size zero": (_manifest(_set("preprocessing.resize_size", 0)), "preprocessing.resize_size 0 is not floor"),
    "input size zero": (_manifest(_set("preprocessing.input_size", 0)), "preprocessing.input_size 0"),
    "variant with a newline": (_manifest(_set("model.variant", "b0\n[property]\ncustom-lib-path=/tmp/x.so")),
                               "model.variant 'b0\\n[property]"),
    "variant climbing folders": (_manifest(_set("model.variant", "b0/../../escaped")),
                                 "model.variant 'b0/../../escaped' is not one of"),
    "input name with a newline": (_manifest(_set("io.input.name", "input\nmean-file=/etc/passwd")),
                                  "io.input.name 'input\\nmean-file"),
    "output name with a quote": (_manifest(_set("io.output.name", 'logits" }')), "io.output.name"),
    "output dims disagree": (_manifest(_set("io.output.shape", ["batch", 10])),
                             "io.output.shape ['batch', 10] is not [batch, model.num_classes = 1000]"),
    "created_by with a newline": (_manifest(_set("created_by.vanexport", "0.1.0\n[red]x")), "created_by.vanexport"),
    "history with markup and a line separator": (_manifest(_set("history.0.event", "[/]\u2028")), r"history[0].event"),
    "labels source with a newline": (_manifest(_set("labels.source", "x\ny")), "labels.source"),
    "check image name with a newline": (_manifest(_set("check.images.0", "a\nb")), "check[0][0]"),
}


def _meta(b0_bundle) -> dict:
    from vanexport.formats.onnx_wire import read_facts

    data = _onnx(b0_bundle)
    return read_facts(io.BytesIO(data), len(data)).metadata


@pytest.fixture(scope="module")
def crafted(b0_bundle, ten_class_onnx, tmp_path_factory):
    """Each case's bundle, made once for all the commands that try it."""
    made = {}

    def get(name):
        if name not in made:
            out = tmp_path_factory.mktemp("crafted") / "evil.tar.gz"
            made[name] = craft(b0_bundle[0], out, **CASES[name][0](b0_bundle, ten_class_onnx))
            _assert_hashes_agree(made[name])
        return made[name]
    return get


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_inconsistent_bundles_are_refused(crafted, case, photo, name, command):
    message = CASES[name][1]
    bundle = crafted(name)
    o = run_cli(COMMANDS[command](bundle), case)
    assert_refused(o, message, out=case / "out")
    assert "refusing bundle" in o.stderr


def _assert_hashes_agree(bundle):
    """The crafted bundle is intact: every member matches the manifest, models[] included (only its parts disagree)."""
    import hashlib

    manifest, data = read_members(bundle)
    assert set(manifest["files"]) == set(data)
    for name, content in data.items():
        assert manifest["files"][name] == {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
    for m in manifest["models"]:
        assert m["sha256"] == manifest["files"][m["file"]]["sha256"]


def test_a_consistent_bundle_is_accepted_and_inspect_lists_what_it_verified(b0_bundle, case, photo):
    """The control: the same bundle, rebuilt by the same crafting with nothing changed, passes every command; and
    a bundle with an ONNX file whose external data lies beside it, listed, is accepted too."""
    from vanexport.device.consistency import CHECKS

    bundle = craft(b0_bundle[0], case / "good.tar.gz", stub_models=False)
    for command, args in COMMANDS.items():
        o = run_cli(args(bundle), case)
        assert o.code == 0, (command, o.stderr)
    o = run_cli(["inspect", bundle, "--json"], case)
    details = json.loads(o.stdout)["details"]
    assert details["verified"] is True and details["checks"] == list(CHECKS)
    o = run_cli(["unpack", bundle, "-o", "out/again", "--json"], case)
    assert json.loads(o.stdout)["checks"] == list(CHECKS)
    assert any("labels" in c for c in CHECKS) and any("metadata" in c for c in CHECKS) \
        and any("external data" in c for c in CHECKS)


def test_external_data_beside_the_model_is_accepted(b0_bundle, case, photo):
    """An ONNX file whose weights are in 'onnx/w.data', a listed member beside it: opened, and it answers what the
    single-file model answers."""
    model, data = _with_external_data(_onnx(b0_bundle), "w.data")
    bundle = craft(b0_bundle[0], case / "ext.tar.gz", stub_models=False, files={ONNX: model, "onnx/w.data": data},
                   mutate=lambda m: m["models"][0].update(sha256=m["files"][ONNX]["sha256"]))
    one_way = ["--json", "--backend", "onnxruntime-cpu"]  # the same backend for both: the answers compare bit for bit
    plain = run_cli(["predict", "photo.png", "--model", b0_bundle[0], *one_way], case)
    ext = run_cli(["predict", "photo.png", "--model", bundle, *one_way], case)
    assert plain.code == 0 and ext.code == 0, ext.stderr
    assert json.loads(ext.stdout)["predictions"] == json.loads(plain.stdout)["predictions"]


@pytest.mark.parametrize("validate", [False, True])
def test_bundle_packs_external_data(b0_onnx_64, case, photo, validate):
    """`vanexport bundle --model` of an ONNX file saved with external data (with and without --no-validate) packs
    the data file beside the model, and the bundle then runs on a device like the single-file one."""
    import onnx

    if validate:
        pytest.importorskip("polygraphy")
    model = onnx.load(str(b0_onnx_64))
    onnx.save_model(model, str(case / "split.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="split.onnx.data", size_threshold=1024)
    args = ["bundle", "--model", "split.onnx", "-o", "out/b.tar.gz"] + ([] if validate else ["--no-validate"])
    o = run_cli(args, case)
    assert o.code == 0, o.stderr
    with tarfile.open(case / "out" / "b.tar.gz") as tar:
        names = tar.getnames()
        data = tar.extractfile("onnx/split.onnx.data").read()
    assert data == (case / "split.onnx.data").read_bytes() and len(data) > 10_000_000  # the weights, all of them
    (case / "split.onnx.data").rename(case / "moved.data")  # the device has only the bundle
    o = run_cli(["predict", "photo.png", "--model", "out/b.tar.gz", "--json"], case)
    assert o.code == 0, o.stderr
    assert "onnx/split.onnx.data" in names


def test_bundle_refuses_external_data_outside_the_model_folder(b0_onnx_64, case):
    model, data = _with_external_data(b0_onnx_64.read_bytes(), "../w.data")
    (case / "m").mkdir()
    (case / "m" / "x.onnx").write_bytes(model)
    (case / "w.data").write_bytes(data)
    o = run_cli(["bundle", "--model", "m/x.onnx", "-o", "out/b.tar.gz", "--no-validate"], case)
    assert_refused(o, "'x.onnx' reads weights from outside its folder", out=case / "out")


def test_bundle_refuses_a_label_of_two_lines(b0_onnx_64, case):
    """A labels file with a CR inside a name: the device would read a name that splits in two."""
    names = _imagenet()
    names[7] = "cock\rhen"
    (case / "labels.txt").write_bytes(("\n".join(names) + "\n").encode())
    o = run_cli(["bundle", "--model", b0_onnx_64, "--labels", "labels.txt", "-o", "out/b.tar.gz", "--no-validate"],
                case)
    assert_refused(o, "class name 7 'cock\\rhen' is not one line", out=case / "out")


def test_members_named_with_a_leading_dot_slash_are_the_same_parts(b0_bundle, case):
    """Tar writers spell names differently (`./labels.txt`); the archive reader takes them as `labels.txt`, and so
    does the consistency check of `inspect`, which reads the parts straight from the archive."""
    from .conftest import write_tar

    manifest, data = read_members(b0_bundle[0])
    bundle = write_tar(case / "dotted.tar.gz", [("./manifest.json", json.dumps(manifest).encode()),
                                                *((f"./{name}", content) for name, content in sorted(data.items()))])
    for args in (["inspect", bundle, "--json"], ["unpack", bundle, "-o", "out/u", "--json"]):
        o = run_cli(args, case)
        assert o.code == 0, o.stderr
        record = json.loads(o.stdout)
        assert (record["details"] if args[0] == "inspect" else record)["verified"] is True
