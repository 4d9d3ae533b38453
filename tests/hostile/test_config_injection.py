"""Config, code and path injection: no string from a bundle, a file name or a flag becomes a config line, a line of
Python or a path in what `vanexport triton` and `vanexport deepstream` write.

Two levels. Through the CLI, archives whose hashes are all consistent (as an attacker would make them): refused with
one line and exit 2, nothing written in or outside -o (the bundle reader may refuse them first; either is right).
Through the writers with the reader bypassed (a checked bundle whose record is then forged): each writer refuses on
its own, and what it does write parses with the real parsers (Triton's model-config schema; GLib's key-file parser,
which nvinfer and nvdspreprocess use, when libglib is on the machine, and Python's configparser) into exactly the
expected groups and keys, and the generated Python holds no string from the bundle.
"""
import ast
import configparser
import copy
import ctypes
import ctypes.util
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from vanexport.device.bundle import Bundle, open_bundle
from vanexport.errors import VanexportError

from .conftest import craft, run_cli, tree

pytest.importorskip("tritonclient", reason="tritonclient (Triton's model-config schema) is in the 'triton' extra")

from vanexport.ship.deepstream import deepstream_config  # noqa: E402
from vanexport.ship.triton import parse_model_config, triton_repository  # noqa: E402

PBTXT_INJECTION = 'x\nparameters { key: "EXECUTION_ENV_PATH" value { string_value: "$$TRITON_MODEL_DIRECTORY" } }\n#'
KEYFILE_INJECTION = "x\n[property]\ncustom-lib-path=evil.so\n#"
HOSTILE_VARIANTS = {"newline and a group": "b0\n[property]\ncustom-lib-path=/tmp/evil.so",
                    "closes a docstring": 'b0"""\nimport os\nos.system("true")\n"""',
                    "climbs out": "b0/../../../escaped"}
HOSTILE_TENSOR_NAMES = {"newline": "input\ntensor-name=evil", "list separator": "input;evil",
                        "quote": 'in"put', "group": "[property]"}
HOSTILE_LABELS = {"carriage return": "cat\rdog", "line separator": "cat\u2028dog", "NUL": "cat\x00dog"}

# What the writers write, and nothing else (the reference for "no key or group was added").
CONFIG_INFER_KEYS = {
    "gpu-id", "net-scale-factor", "offsets", "model-color-format", "onnx-file", "model-engine-file", "labelfile-path",
    "batch-size", "network-mode", "network-type", "process-mode", "infer-dims", "network-input-order",
    "output-blob-names", "classifier-threshold", "maintain-aspect-ratio", "scaling-filter", "scaling-compute-hw",
    "gie-unique-id", "input-tensor-from-meta"}
PREPROCESS_KEYS = {
    "property": {"enable", "target-unique-ids", "unique-id", "gpu-id", "process-on-frame", "network-input-order",
                 "network-input-shape", "processing-width", "processing-height", "maintain-aspect-ratio",
                 "symmetric-padding", "network-color-format", "tensor-data-type", "tensor-name",
                 "scaling-buf-pool-size", "tensor-buf-pool-size", "scaling-pool-memory-type",
                 "scaling-pool-compute-hw", "scaling-filter", "custom-lib-path", "custom-tensor-preparation-function"},
    "user-configs": {"pixel-normalization-factor", "offsets"},
    "group-0": {"src-ids", "custom-input-transformation-function", "process-on-roi", "draw-roi",
                "roi-params-src-0"}}
PREPROCESS_PARAMETERS = {"resize_size", "input_size", "interpolation", "mean", "std"}


# ---- parsers ----------------------------------------------------------------------------------------------------

def _glib():
    name = ctypes.util.find_library("glib-2.0")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    lib.g_key_file_new.restype = ctypes.c_void_p
    lib.g_key_file_load_from_data.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
                                              ctypes.POINTER(ctypes.c_void_p)]
    lib.g_key_file_get_groups.restype = ctypes.POINTER(ctypes.c_char_p)
    lib.g_key_file_get_groups.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.g_key_file_get_keys.restype = ctypes.POINTER(ctypes.c_char_p)
    lib.g_key_file_get_keys.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.g_key_file_get_value.restype = ctypes.c_void_p
    lib.g_key_file_get_value.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]
    lib.g_free.argtypes = [ctypes.c_void_p]
    lib.g_key_file_free.argtypes = [ctypes.c_void_p]
    return lib


GLIB = _glib()


def glib_groups(text: str) -> dict[str, dict[str, str]]:
    """The groups, keys and raw values GLib's GKeyFile (g_key_file_load_from_data, G_KEY_FILE_NONE: how nvinfer and
    nvdspreprocess load their configs) reads from `text`."""
    kf = GLIB.g_key_file_new()
    try:
        data = text.encode()
        error = ctypes.c_void_p()
        assert GLIB.g_key_file_load_from_data(kf, data, len(data), 0, ctypes.byref(error)), "GLib refuses the file"

        def strings(array):
            out, i = [], 0
            while array[i] is not None:
                out.append(array[i].decode())
                i += 1
            return out

        groups = {}
        for group in strings(GLIB.g_key_file_get_groups(kf, None)):
            keys = strings(GLIB.g_key_file_get_keys(kf, group.encode(), None, None))
            values = {}
            for key in keys:
                raw = GLIB.g_key_file_get_value(kf, group.encode(), key.encode(), None)
                values[key] = ctypes.string_at(raw).decode()
                GLIB.g_free(raw)
            groups[group] = values
        return groups
    finally:
        GLIB.g_key_file_free(kf)


def key_file_groups(path: Path) -> dict[str, dict[str, str]]:
    """The key file's groups and keys as configparser reads it (strict: a repeated group or key is an error), and,
    where libglib is installed, checked to be exactly what GLib reads."""
    text = path.read_text(encoding="utf-8")
    ini = configparser.ConfigParser(delimiters=("=",), comment_prefixes=("#",), inline_comment_prefixes=None,
                                    strict=True, interpolation=None, empty_lines_in_values=False)
    ini.optionxform = str  # keys are case-sensitive in GLib
    ini.read_string(text)
    groups = {s: dict(ini[s]) for s in ini.sections()}
    if GLIB is not None:
        assert glib_groups(text) == groups
    return groups


def python_strings(path: Path) -> list[str]:
    """Every string constant in a Python file (docstrings included)."""
    return [n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)]


# ---- forged bundles: the reader's checks bypassed -----------------------------------------------------------------

@dataclasses.dataclass
class Forged(Bundle):
    """A checked bundle whose record is then changed, as if a reader had let anything through."""

    forged_onnx: Path | None = None
    forged_engines: list | None = None

    def onnx(self, precision="fp32"):
        return self.forged_onnx or super().onnx(precision)

    @property
    def engines(self):
        return self.forged_engines if self.forged_engines is not None else super().engines


@pytest.fixture(scope="module")
def unpacked(b0_bundle, tmp_path_factory):
    return open_bundle(b0_bundle[0], tmp_path_factory.mktemp("unpacked") / "b")


@pytest.fixture
def forge(unpacked, case, monkeypatch, tmp_path_factory):
    """forge(change) -> a bundle file in the case folder that both writers open as the good bundle with `change`
    applied to a copy of its record (change(forged bundle)), and `labels` (a list) as its label file."""
    def make(change=None, file_name="bundle.tar.gz", labels=None, **forged):
        b = Forged(root=unpacked.root, manifest=copy.deepcopy(unpacked.manifest), source=unpacked.source, **forged)
        if change:
            change(b)
        if labels is not None:  # the file as it would be in the bundle, wherever it lies
            path = tmp_path_factory.mktemp("labels") / "labels.txt"
            path.write_bytes(("\n".join(labels) + "\n").encode())
            b.manifest.labels.file = str(path)
        monkeypatch.setattr("vanexport.device.bundle.open_bundle", lambda path, *a, **k: b)
        path = case / file_name
        path.write_bytes(b"the writers are handed the forged bundle, not this file")
        return path
    return make


def _everything(case: Path) -> set[str]:
    return {p for p in tree(case) if not p.startswith("cache")}


def _refused(call, message: str, case: Path):
    """The writer refuses with one line holding `message`, and writes nothing anywhere in the case folder."""
    before = _everything(case)
    with pytest.raises(VanexportError) as e:
        call()
    assert message in str(e.value), str(e.value)
    assert "\n" not in str(e.value) and "\r" not in str(e.value)
    assert _everything(case) == before, sorted(_everything(case) - before)
    assert not list((case / "out").iterdir())
    return e.value


WRITERS = {
    "triton": lambda bundle, case, **kw: triton_repository(bundle, case / "out" / "repo", ensemble=True, **kw),
    "deepstream": lambda bundle, case, **kw: deepstream_config(bundle, case / "out" / "config_infer.txt", **kw),
}


def _set(attribute_path: str, value):
    def change(b):
        *parents, last = attribute_path.split(".")
        node = b
        for p in parents:
            node = getattr(node, p)
        setattr(node, last, value)
    return change


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("name", list(HOSTILE_VARIANTS))
def test_a_hostile_variant_is_refused_by_the_writer(forge, case, writer, name):
    bundle = forge(_set("manifest.model.variant", HOSTILE_VARIANTS[name]))
    _refused(lambda: WRITERS[writer](bundle, case), "model.variant", case)
    assert not (case / "escaped").exists()


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("io", ["io_input", "io_output"])
@pytest.mark.parametrize("name", list(HOSTILE_TENSOR_NAMES))
def test_a_hostile_tensor_name_is_refused_by_the_writer(forge, case, writer, io, name):
    bundle = forge(_set(f"manifest.{io}.name", HOSTILE_TENSOR_NAMES[name]))
    _refused(lambda: WRITERS[writer](bundle, case), io.replace("_", ".") + ".name", case)


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("shape", [[-1, 3, 64, 64], ["batch", 3, True, 64], ["batch", 3, 64, 2**40]])
def test_input_dims_are_sizes(forge, case, writer, shape):
    bundle = forge(_set("manifest.io_input.shape", shape))
    _refused(lambda: WRITERS[writer](bundle, case), "an axis of io.input.shape", case)


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("name", list(HOSTILE_LABELS))
def test_a_label_that_is_not_one_line_is_refused(forge, case, unpacked, writer, name):
    labels = list(unpacked.labels)
    labels[7] = HOSTILE_LABELS[name]
    bundle = forge(labels=labels)
    _refused(lambda: WRITERS[writer](bundle, case), "label 8", case)


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("count", [999, 1001])
def test_a_label_file_of_another_length_is_refused(forge, case, unpacked, writer, count):
    bundle = forge(labels=[f"class {i}" for i in range(count)])
    _refused(lambda: WRITERS[writer](bundle, case), f"the label file has {count} lines for 1000 classes", case)


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("key, value, message", [
    ("interpolation", "bicubic\n[property]", "preprocessing.interpolation"),
    ("mean", ["0.5\n[property]", 0.5, 0.5], "preprocessing.mean"),
    ("std", [float("nan"), 0.5, 0.5], "preprocessing.std"),
    ("std", [0.0, 0.0, 0.0], "preprocessing.std"),
    ("input_size", 10**9, "preprocessing.input_size"),
    ("input_size", "224\n[property]", "invalid literal"),
    ("crop_pct", float("inf"), "preprocessing.crop_pct"),
])
def test_preprocessing_values_are_numbers_in_range(forge, case, writer, key, value, message):
    bundle = forge(lambda b: b.manifest.preprocessing.update({key: value}))
    _refused(lambda: WRITERS[writer](bundle, case), message, case)


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("file_name", [f"{PBTXT_INJECTION}.tar.gz", f"{KEYFILE_INJECTION}.tar.gz",
                                       "b\u2028.tar.gz", "b\x1b[2J.tar.gz"])
def test_a_bundle_file_name_that_is_not_one_line_is_refused(forge, case, writer, file_name):
    bundle = forge(file_name=file_name)
    _refused(lambda: WRITERS[writer](bundle, case), "the bundle's file name", case)


def test_triton_reads_every_config_back_as_the_message_it_built(forge, case, monkeypatch):
    """The second line of defence: were the file name let through, the injected `parameters` field parses with
    Triton's schema (the issue's case) but is not in the config built, so nothing is written."""
    monkeypatch.setattr("vanexport.ship.triton.bundle_file_name", lambda path: Path(path).name)
    bundle = forge(file_name=f"{PBTXT_INJECTION}.tar.gz")
    injected = f"# from {bundle.name}\n" + 'name: "m" platform: "onnxruntime_onnx" max_batch_size: 1 ' \
        'input [{name: "i" data_type: TYPE_FP32 dims: [1]}] output [{name: "o" data_type: TYPE_FP32 dims: [1]}]'
    assert "EXECUTION_ENV_PATH" in parse_model_config(injected).parameters  # the schema alone lets it in
    _refused(lambda: WRITERS["triton"](bundle, case), "does not read back as the config built", case)


def test_deepstream_comments_are_one_line_each(forge, case, monkeypatch):
    """The second line of defence in the key-file encoder: a comment that is not one line is refused."""
    monkeypatch.setattr("vanexport.ship.deepstream.bundle_file_name", lambda path: Path(path).name)
    bundle = forge(file_name=f"{KEYFILE_INJECTION}.tar.gz")
    _refused(lambda: WRITERS["deepstream"](bundle, case), "cannot write the DeepStream config", case)


@pytest.mark.parametrize("name", ["../x", "x/y", ".hidden", "a\nb", "", "a" * 101])
def test_triton_name_must_be_a_plain_folder_name(forge, case, name):
    bundle = forge()
    _refused(lambda: WRITERS["triton"](bundle, case, name=name), "--name", case)


def test_a_name_that_grows_too_long_with_its_suffix_is_refused(forge, case):
    bundle = forge()
    _refused(lambda: WRITERS["triton"](bundle, case, name="a" * 95), "the model name", case)  # + _preprocess


def test_a_plans_compute_capability_names_no_path(forge, case, unpacked, tmp_path):
    from types import SimpleNamespace

    plan = tmp_path / "x.plan"
    plan.write_bytes(b"plan")
    engine = SimpleNamespace(entry=SimpleNamespace(precision="fp16", file="engines/x.plan"), plan_path=plan,
                             manifest=SimpleNamespace(gpu=SimpleNamespace(compute_capability="../../../x"), inputs=[]))
    bundle = forge(forged_engines=[engine])
    _refused(lambda: WRITERS["triton"](bundle, case), "compute capability '../../../x'", case)


def test_the_deepstream_onnx_name_from_the_bundle_is_plain(forge, case, unpacked, tmp_path):
    import shutil

    odd = tmp_path / "van\n[property]\ncustom-lib-path=evil.so\n.onnx"
    shutil.copyfile(unpacked.onnx("fp32"), odd)
    bundle = forge(forged_onnx=odd)
    _refused(lambda: WRITERS["deepstream"](bundle, case), "the name of the bundled ONNX file", case)


@pytest.mark.parametrize("output", ["bad\nname.txt", "bad;name.txt", "bad[x].txt", "bad\\name.txt"])
def test_deepstream_output_names_that_cannot_be_a_value(forge, case, output):
    bundle = forge()
    _refused(lambda: deepstream_config(bundle, case / "out" / output), "cannot be one value", case)


def _onnx_with_external_data(src: Path, dst: Path, location: str, where: str) -> Path:
    """`src` with one more tensor whose data lies outside the file, at `location`: an initializer, or the value of a
    Constant node (where a check of the initializers alone would miss it)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(src)
    tensor = numpy_helper.from_array(np.zeros(4, np.float32), "outside")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    if where == "initializer":
        model.graph.initializer.append(tensor)
    else:
        model.graph.node.append(helper.make_node("Constant", [], ["outside_value"], value=tensor))
    dst.write_bytes(model.SerializeToString())
    return dst


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("where", ["initializer", "constant"])
def test_an_onnx_with_external_data_is_refused(forge, case, unpacked, tmp_path, writer, where):
    pytest.importorskip("onnx")
    onnx_file = _onnx_with_external_data(unpacked.onnx("fp32"), tmp_path / "m.onnx", "/etc/passwd", where)
    bundle = forge(forged_onnx=onnx_file)
    _refused(lambda: WRITERS[writer](bundle, case), "external data", case)


# ---- what is written parses, holds exactly what it should, and no Python holds a bundle string ---------------------

ODD_BUT_FINE = {"input": "pixels_zq.in:0", "output": "scores_zq-out", "file": 'bundle "zq" {#1} ☃.tar.gz',
                "label": 'label_zq """; import os # {x} ☃'}


def _odd_but_fine(b):
    b.manifest.io_input.name, b.manifest.io_output.name = ODD_BUT_FINE["input"], ODD_BUT_FINE["output"]


def test_triton_files_parse_and_hold_no_bundle_string(forge, case, unpacked, b0_bundle, tmp_path, monkeypatch):
    labels = [ODD_BUT_FINE["label"] + str(i) for i in range(len(unpacked.labels))]
    bundle = forge(_odd_but_fine, file_name=ODD_BUT_FINE["file"], labels=labels)
    repo = case / "out" / "repo"
    triton_repository(bundle, repo, ensemble=True)
    assert {p for p in _everything(case) if not p.startswith("out")} == {ODD_BUT_FINE["file"]}
    models = sorted(p.name for p in repo.iterdir())
    assert models == ["van_b0", "van_b0_ensemble", "van_b0_preprocess"]
    for model in models:
        text = (repo / model / "config.pbtxt").read_text()
        cfg = parse_model_config(text)
        assert cfg.name == model
        assert set(cfg.parameters) == (PREPROCESS_PARAMETERS if model.endswith("_preprocess") else set())
        assert (repo / model / "labels.txt").read_text(encoding="utf-8").split("\n") == [*labels, ""]
    ort = parse_model_config((repo / "van_b0" / "config.pbtxt").read_text())
    assert [t.name for t in ort.input] == [ODD_BUT_FINE["input"]] and [t.name for t in ort.output] == [
        ODD_BUT_FINE["output"]]

    bundle_strings = {ODD_BUT_FINE["input"], ODD_BUT_FINE["output"], ODD_BUT_FINE["file"], "b0", "zq", *labels}
    for script in (repo / "van_b0_preprocess" / "1" / "model.py", repo / "van_b0_ensemble" / "client.py"):
        for constant in python_strings(script):
            assert not any(s in constant for s in bundle_strings), (script.name, constant)
    # the same scripts for any bundle: those of the untouched bundle, byte for byte
    plain = tmp_path / "plain"
    untouched = Bundle(root=unpacked.root, manifest=unpacked.manifest, source=unpacked.source)
    monkeypatch.setattr("vanexport.device.bundle.open_bundle", lambda path, *a, **k: untouched)
    triton_repository(b0_bundle[0], plain, ensemble=True, name="other")
    assert (plain / "other_preprocess" / "1" / "model.py").read_bytes() == (
        repo / "van_b0_preprocess" / "1" / "model.py").read_bytes()
    assert (plain / "other_ensemble" / "client.py").read_bytes() == (
        repo / "van_b0_ensemble" / "client.py").read_bytes()


def test_deepstream_files_parse_into_exactly_the_expected_keys(forge, case, unpacked):
    labels = [ODD_BUT_FINE["label"] + f";{i}" for i in range(len(unpacked.labels))]
    bundle = forge(_odd_but_fine, file_name=ODD_BUT_FINE["file"], labels=labels)
    out = case / "out" / "my config ☃.txt"
    deepstream_config(bundle, out)
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        ["my config ☃.txt", "my config ☃_labels.txt", "my config ☃_preprocess.txt", "my config ☃_roi_labels.py",
         "van_b0_64_fp32_softmax.onnx"])
    config = key_file_groups(out)
    assert set(config) == {"property"} and set(config["property"]) == CONFIG_INFER_KEYS
    assert config["property"]["labelfile-path"] == "my config ☃_labels.txt"
    assert config["property"]["onnx-file"] == "van_b0_64_fp32_softmax.onnx"
    pre = key_file_groups(out.parent / "my config ☃_preprocess.txt")
    assert {g: set(keys) for g, keys in pre.items()} == PREPROCESS_KEYS
    assert pre["property"]["tensor-name"] == ODD_BUT_FINE["input"]
    # one line of labels, split by ';' into one label per class (a ';' inside a label became ',')
    lines = (out.parent / "my config ☃_labels.txt").read_text(encoding="utf-8").split("\n")
    assert lines[1:] == [""] and lines[0].split(";") == [label.replace(";", ",") for label in labels]


@pytest.mark.skipif(GLIB is None, reason="libglib-2.0 is not installed")
def test_glib_reads_an_injected_line_as_a_new_group(tmp_path):
    """The reference parser sees the attack this file guards against (so its agreement above means something)."""
    text = f"[property]\nonnx-file={KEYFILE_INJECTION}\n"
    assert glib_groups(text)["property"]["custom-lib-path"] == "evil.so"


# ---- through the CLI: crafted archives with consistent hashes, flags, file names, links ---------------------------

def _manifest_set(path: str, value):
    def mutate(m):
        *parents, last = path.split(".")
        node = m
        for p in parents:
            node = node[p]
        node[last] = value
    return mutate


CLI_CASES = {
    **{f"variant: {k}": dict(mutate=_manifest_set("model.variant", v)) for k, v in HOSTILE_VARIANTS.items()},
    **{f"io.input.name: {k}": dict(mutate=lambda m, v=v: m["io"]["input"].update(name=v))
       for k, v in HOSTILE_TENSOR_NAMES.items()},
    "io.output.name: newline": dict(mutate=lambda m: m["io"]["output"].update(name="logits\n[property]")),
}

COMMANDS = {
    "triton": lambda b: ["triton", b, "-o", "out/repo", "--ensemble"],
    "deepstream": lambda b: ["deepstream", b, "-o", "out/config_infer.txt"],
}


def _assert_refused_by_the_cli(o, case: Path):
    """One `error:` line, exit 2, nothing in -o and nothing new outside it (the cache is the reader's)."""
    errors = [line for line in o.stderr.splitlines() if line.startswith("error: ")]
    assert o.code == 2 and len(errors) == 1 and "Traceback" not in o.stderr, o.stderr
    assert not [p for p in o.new_files if not p.startswith("cache")], sorted(o.new_files)
    assert not list((case / "out").iterdir())


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("name", list(CLI_CASES))
def test_hostile_bundles_through_the_cli(b0_bundle, case, command, name):
    bundle = craft(b0_bundle[0], case / "evil.tar.gz", stub_models=False, **CLI_CASES[name])
    o = run_cli(COMMANDS[command](bundle.name), case)
    _assert_refused_by_the_cli(o, case)
    assert not (case / "escaped").exists()


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("label", list(HOSTILE_LABELS.values()))
def test_a_label_with_a_line_break_through_the_cli(b0_bundle, case, unpacked, command, label):
    labels = list(unpacked.labels)
    labels[3] = label
    bundle = craft(b0_bundle[0], case / "evil.tar.gz", stub_models=False,
                   files={unpacked.manifest.labels.file: ("\n".join(labels) + "\n").encode()})
    _assert_refused_by_the_cli(run_cli(COMMANDS[command](bundle.name), case), case)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("file_name", [PBTXT_INJECTION, KEYFILE_INJECTION])
def test_a_bundle_file_name_with_newlines_through_the_cli(b0_bundle, case, command, file_name):
    bundle = case / f"{file_name}.tar.gz"
    bundle.write_bytes(b0_bundle[0].read_bytes())
    o = run_cli(COMMANDS[command](bundle.name), case)
    _assert_refused_by_the_cli(o, case)
    assert "the bundle's file name" in o.stderr


@pytest.mark.parametrize("name", ["../x", "../../x", "x/../../y", "a\nb"])
def test_triton_name_through_the_cli(b0_bundle, case, name):
    o = run_cli(["triton", b0_bundle[0], "-o", "out/repo", "--name", name, "--force"], case)
    _assert_refused_by_the_cli(o, case)
    assert "--name" in o.stderr


def test_an_onnx_with_external_data_through_the_cli(b0_bundle, case, unpacked, tmp_path):
    pytest.importorskip("onnx")
    member = unpacked.manifest.models[0].file
    evil = _onnx_with_external_data(unpacked.onnx("fp32"), tmp_path / "m.onnx", "/etc/passwd", "constant")

    def point_at_it(m):
        m["models"][0]["sha256"] = m["files"][member]["sha256"]

    bundle = craft(b0_bundle[0], case / "evil.tar.gz", stub_models=False, files={member: evil.read_bytes()},
                   mutate=point_at_it)
    for args in COMMANDS.values():
        _assert_refused_by_the_cli(run_cli(args(bundle.name), case), case)


def test_force_replaces_only_a_folder_inside_the_repository(b0_bundle, case):
    """A model folder that is a link to a folder elsewhere is refused, --force or not: the folder is untouched."""
    victim = case / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    repo = case / "out" / "repo"
    repo.mkdir()
    (repo / "van_b0").symlink_to(victim, target_is_directory=True)
    o = run_cli(["triton", b0_bundle[0], "-o", "out/repo", "--force"], case)
    assert o.code == 2 and "is a link or not a folder" in o.stderr, o.stderr
    assert [p.name for p in victim.iterdir()] == ["keep.txt"] and (repo / "van_b0").is_symlink()
    assert sorted(p.name for p in repo.iterdir()) == ["van_b0"]


def test_force_replaces_a_model_folder_and_leaves_nothing_else(b0_bundle, case):
    for _ in range(2):
        o = run_cli(["triton", b0_bundle[0], "-o", "out/repo", "--force"], case)
        assert o.code == 0, o.stderr
    assert sorted(os.listdir(case / "out" / "repo")) == ["van_b0"]


@pytest.mark.parametrize("key, value", [("std", "[0.5, 0.0, 0.5]"), ("mean", "[0.5, NaN, 0.5]"), ("mean", "[0.5]"),
                                        ("interpolation", "lanczos"), ("resize_size", "__import__('os')"),
                                        ("input_size", "999")])
def test_model_py_checks_the_parameters_it_reads(tmp_path, monkeypatch, key, value):
    """config.pbtxt can be edited after vanexport wrote it: model.py takes numbers and a known filter name only,
    and refuses to load otherwise."""
    import sys
    import types

    from modules import load_file

    from vanexport.model.variants import Preprocessing
    from vanexport.ship.triton import PREPROCESS_MODEL, preprocess_parameters

    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", types.ModuleType("triton_python_backend_utils"))
    (tmp_path / "model.py").write_text(PREPROCESS_MODEL)
    model = load_file(tmp_path / "model.py", "checked_model")
    parameters = {k: {"string_value": v} for k, v in preprocess_parameters(Preprocessing()).items()}
    assert model.settings({"parameters": parameters})["size"] == 224  # the control
    parameters[key] = {"string_value": value}
    with pytest.raises(ValueError, match="preprocessing parameters in config.pbtxt"):
        model.settings({"parameters": parameters})
