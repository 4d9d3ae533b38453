"""Hostile and unlucky inputs other than bundles: checkpoints, URLs, images, model files, output names and flags.
Each gets one `error:` line and exit code 2, and leaves nothing behind."""
import hashlib
import os
import pickle

import numpy as np
import pytest

from .conftest import assert_refused, run_cli, run_subprocess, tree


class Evil:
    """A pickle that would run code when loaded with weights_only=False."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _bomb_png(path, side=30000):
    """A tiny PNG that declares side x side pixels (Pillow's decompression-bomb limit is ~179 M pixels)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def _photo(path, size=96):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def files(case, b0):
    """A case folder with every kind of bad file next to a good checkpoint."""
    import torch

    _, sd = b0
    torch.save(sd, case / "good.pth")
    (case / "junk.pth").write_bytes(b"\x00not a checkpoint at all")
    (case / "empty.pth").write_bytes(b"")
    (case / "cut.pth").write_bytes((case / "good.pth").read_bytes()[:4096])
    torch.save({"state_dict": Evil()}, case / "evil.pth")
    with open(case / "evil_plain.pth", "wb") as f:  # a plain pickle, not torch's format
        pickle.dump({"state_dict": Evil()}, f)
    torch.save({"epoch": 3}, case / "meta_only.pth")
    os.mkfifo(case / "pipe.pth")
    (case / "folder.pth").mkdir()
    (case / "junk.onnx").write_bytes(b"this is not a protobuf")
    (case / "empty.onnx").write_bytes(b"")
    os.mkfifo(case / "pipe.onnx")
    return case


CHECKPOINTS = {
    "missing": (["--weights", "absent.pth"], "weights file 'absent.pth' not found"),
    "junk": (["--weights", "junk.pth"], "truncated or not a PyTorch checkpoint"),
    "empty": (["--weights", "empty.pth"], "truncated or not a PyTorch checkpoint"),
    "truncated": (["--weights", "cut.pth"], "truncated or not a PyTorch checkpoint"),
    "code-executing pickle": (["--weights", "evil.pth"], "needs arbitrary code execution"),
    "code-executing plain pickle": (["--weights", "evil_plain.pth"], "not a PyTorch checkpoint"),
    "no tensors": (["--weights", "meta_only.pth"], "holds no state dict of tensors"),
    "named pipe": (["--weights", "pipe.pth"], "is not a regular file"),
    "folder": (["--weights", "folder.pth"], "is a folder"),
    "wrong variant": (["--weights", "good.pth", "--variant", "b2"], "pass --variant b0"),
    "wrong head size": (["--weights", "good.pth", "--num-classes", "10"], "has 1000 classes"),
    "pin mismatch": (["--weights", "good.pth", "--sha256", "0" * 64], "not the pinned"),
    "pin not hex": (["--weights", "good.pth", "--sha256", "xyz"], "is not a sha256 digest"),
    "pin without weights": (["--sha256", "0" * 64], "no --weights was given"),
    "URL that is not there": (["--weights", "file:///nonexistent/van.pth"], "cannot download"),
    "URL pin mismatch": (["--weights", "file://{case}/good.pth#sha256=" + "0" * 64], "not the pinned"),
}


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_bad_checkpoints(files, name):
    args, message = CHECKPOINTS[name]
    args = [a.format(case=files) for a in args]
    o = run_cli(["onnx", "--img-size", "64", "-o", "out/m.onnx", *args], files)
    assert_refused(o, message, out=files / "out")
    assert not (files / "pwned").exists()


@pytest.mark.parametrize("env, message", [({"VANEXPORT_OFFLINE": "1"}, "offline mode"),
                                          ({"VANEXPORT_MAX_DOWNLOAD_GB": "0.001"}, "download cap")],
                         ids=["offline without the file cached", "over the download cap"])
def test_downloads_refused(files, env, message):
    o = run_cli(["onnx", "--img-size", "64", "-o", "out/m.onnx", "--weights", f"file://{files}/good.pth"], files,
                env=env)
    assert_refused(o, message, out=files / "out")


MODEL_FILES = {
    "validate junk": (["validate", "junk.onnx"], "not a readable ONNX file"),
    "validate empty": (["validate", "empty.onnx"], "has no vanexport metadata"),
    "validate pipe": (["validate", "pipe.onnx"], "is not a regular file"),
    "validate a checkpoint": (["validate", "good.pth"], "cannot validate 'good.pth'"),
    "fp16 junk": (["fp16", "junk.onnx", "-o", "out/x.onnx"], "not a readable ONNX file"),
    "fp16 pipe": (["fp16", "pipe.onnx", "-o", "out/x.onnx"], "is not a regular file"),
    "quantize junk": (["quantize", "junk.onnx", "--int8", "--calib", ".", "-o", "out/x.onnx"], "not a readable ONNX file"),
    "inspect junk": (["inspect", "junk.onnx"], "not a readable ONNX file"),
    "inspect pipe": (["inspect", "pipe.onnx"], "not found"),
    "sensitivity junk": (["sensitivity", "junk.onnx", "--calib", "."], "not a readable ONNX file"),
    "trt junk without TensorRT": (["trt", "junk.onnx"], "TensorRT is not installed"),
    "predict with a checkpoint": (["predict", "x.png", "--model", "good.pth"], "cannot tell what 'good.pth' is"),
    "predict junk onnx": (["predict", "x.png", "--model", "junk.onnx"], "ONNX Runtime cannot load"),
}


@pytest.mark.parametrize("name", list(MODEL_FILES))
def test_bad_model_files(files, name):
    args, message = MODEL_FILES[name]
    _photo(files / "x.png")
    o = run_cli(args, files)
    assert_refused(o, message, out=files / "out")


def test_an_onnx_whose_graph_contradicts_its_metadata(b0_onnx_64, case):
    """Metadata copied onto another graph (here: the output renamed) is refused, not run."""
    import onnx

    model = onnx.load(str(b0_onnx_64))
    model.graph.output[0].name = "renamed"
    model.graph.node[-1].output[0] = "renamed"
    onnx.save(model, str(case / "edited.onnx"))
    _photo(case / "x.png")
    for args in (["validate", "edited.onnx"], ["predict", "x.png", "--model", "edited.onnx"]):
        o = run_cli(args, case)
        assert_refused(o, "does not match its own metadata", out=case / "out")


@pytest.mark.slow
@pytest.mark.usefixtures("small_entropy_histograms")  # the skipped image is counted; the ranges are not checked
def test_decompression_bombs_are_skipped_and_counted(b0_onnx_64, case):
    (case / "imgs" / "0").mkdir(parents=True)
    (case / "imgs" / "1").mkdir(parents=True)
    _bomb_png(case / "imgs" / "0" / "bomb.png")
    _photo(case / "imgs" / "1" / "good.png")
    o = run_cli(["predict", "imgs", "--model", b0_onnx_64, "--json"], case)
    assert o.code == 0 and "warning: image 'imgs/0/bomb.png' is too large" in o.stderr
    assert "Traceback" not in o.stderr
    o = run_cli(["predict", "imgs/0/bomb.png", "--model", b0_onnx_64], case)
    assert_refused(o, "none of the images could be read", out=case / "out")
    o = run_cli(["validate", b0_onnx_64, "--images", "imgs", "--json"], case)
    assert o.code == 0, o.stderr  # the bomb is skipped, the photo is compared
    o = run_cli(["quantize", b0_onnx_64, "--int8", "--calib", "imgs", "--num-calib", "1", "-o", "out/q.onnx",
                 "--json"], case)
    assert o.code == 0 and '"skipped": 1' in o.stdout, o.stderr


def test_images_that_are_not_images(b0_onnx_64, case):
    (case / "cut.png").write_bytes(_photo(case / "p.png").read_bytes()[:100])
    (case / "zero.png").write_bytes(b"")
    (case / "text.jpg").write_text("hello")
    os.mkfifo(case / "pipe.png")
    for name in ("cut.png", "zero.png", "text.jpg", "pipe.png"):
        o = run_subprocess(["predict", name, "--model", b0_onnx_64], case, timeout=60)  # a pipe must not hang
        assert_refused(o, "none of the images could be read", out=case / "out")
    o = run_cli(["predict", "absent.png", "--model", b0_onnx_64], case)
    assert_refused(o, "image 'absent.png' not found", out=case / "out")


def test_a_folder_with_no_usable_image(b0_onnx_64, case):
    (case / "imgs").mkdir()
    (case / "imgs" / "a.png").write_bytes(b"not png")
    o = run_cli(["validate", b0_onnx_64, "--images", "imgs"], case)
    assert_refused(o, "no readable images", out=case / "out")


OUTPUTS = {
    "folder that does not exist": (["-o", "nowhere/m.onnx"], "output folder 'nowhere' does not exist"),
    "output is a folder": (["-o", "out"], "is a directory"),
    "name longer than the file system allows": (["-o", "out/" + "n" * 300 + ".onnx"], "longer than this file system"),
    "output is a pipe": (["-o", "out/pipe.onnx"], "exists and is not a regular file"),
}


@pytest.mark.parametrize("name", list(OUTPUTS))
def test_bad_outputs(case, name):
    if name == "output is a pipe":
        os.mkfifo(case / "out" / "pipe.onnx")
    args, message = OUTPUTS[name]
    before = tree(case / "out")
    o = run_cli(["onnx", "--img-size", "64", *args], case)
    assert_refused(o, message)
    assert tree(case / "out") == before


def test_read_only_output_folder(case):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the check is tested with os.access in tests/export")
    (case / "out").chmod(0o500)
    o = run_cli(["onnx", "--img-size", "64", "-o", "out/m.onnx"], case)
    assert_refused(o, "is not writable", out=case / "out")


def test_a_legal_250_character_name_works(case):
    name = "v" * 245 + ".onnx"  # 250 bytes: legal on every common file system
    o = run_cli(["onnx", "--img-size", "64", "--no-validate", "-o", f"out/{name}"], case)
    assert o.code == 0, o.stderr
    assert tree(case / "out") == {name}  # and no temp file beside it


def test_an_image_size_that_cannot_fit_in_memory(case):
    o = run_cli(["onnx", "--img-size", "8192", "-o", "out/m.onnx"], case)
    assert_refused(o, "needs about", out=case / "out")
    o = run_cli(["bench", "--img-size", "8192", "--backends", "ort"], case)
    assert_refused(o, "needs about")


FLAGS = {
    "opset": (["onnx", "--opset", "11"], "opset 11 is not supported"),
    "opset not a number": (["onnx", "--opset", "x"], "is not a valid integer"),
    "image size": (["onnx", "--img-size", "250"], "not a multiple of 32"),
    "negative batch": (["onnx", "--batch", "-1"], "is not positive"),
    "unknown variant": (["onnx", "--variant", "b9"], "is not one of"),
    "unknown exporter": (["onnx", "--exporter", "tf"], "is not one of"),
    "unknown command": (["exporter"], "No such command"),
    "bench batches": (["bench", "--batch", "1,x"], "not a comma-separated list"),
    "bench threads": (["bench", "--threads", "0"], "is not positive"),
    "bench no backend can run": (["bench", "--backends", "trt"], "no requested benchmark can run"),
    "bundle cap not a number": (["unpack", "x.tar.gz", "-o", "out/u"], "is not a number"),
}


@pytest.mark.parametrize("name", list(FLAGS))
def test_bad_flags(case, name):
    args, message = FLAGS[name]
    env = {"VANEXPORT_MAX_BUNDLE_GB": "lots"} if name == "bundle cap not a number" else None
    if name == "bundle cap not a number":
        from vanexport.formats.bundle_manifest import FORMAT
        from .conftest import write_tar

        write_tar(case / "x.tar.gz", [("manifest.json", b'{"format": "%s"}' % FORMAT.encode())])
    o = run_cli(args, case, env=env)
    assert_refused(o, message, out=case / "out")


def test_the_pin_is_checked_before_a_byte_of_the_checkpoint_is_unpickled(files, monkeypatch):
    """A pinned file that differs is refused before torch.load sees it."""
    import torch

    calls = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a) or {})
    digest = hashlib.sha256((files / "good.pth").read_bytes()).hexdigest()
    o = run_cli(["onnx", "--img-size", "64", "-o", "out/m.onnx", "--weights", "evil.pth", "--sha256", digest], files)
    assert_refused(o, "not the pinned", out=files / "out")
    assert calls == []
