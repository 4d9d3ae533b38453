import json
import os
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from vanexport.cli import cli


@pytest.fixture
def run():
    def invoke(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return invoke


def test_onnx_json_then_validate(run, tmp_path):
    out = tmp_path / "b0.onnx"
    r = run("onnx", "--variant", "b0", "--img-size", "64", "-o", out, "--json")
    assert r.exit_code == 0, r.output
    record = json.loads(r.stdout)
    assert record["path"] == str(out) and out.exists() and record["validation"]["passed"]
    assert "random weights" in r.stderr  # the warning reaches the user
    r = run("validate", out, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["overall"]["top1_agree"] == 1.0
    r = run("validate", out, "--atol", "0")
    assert r.exit_code == 1 and "FAIL" in r.stdout


def test_onnx_report_shows_the_validation_table(run, tmp_path):
    r = run("onnx", "--variant", "b0", "--batch", "2", "--img-size", "64", "-o", tmp_path / "m.onnx")
    assert r.exit_code == 0
    assert "photos 64x64" in r.stdout and "PASS" in r.stdout and "2x3x64x64" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["onnx", "--weights", "{tmp}/missing.pth"], "weights file '{tmp}/missing.pth' not found"),
    (["onnx", "--weights", "{tmp}/junk.pth"], "is truncated or not a PyTorch checkpoint"),
    (["onnx", "--weights", "{tmp}/evil.pth"], "needs arbitrary code execution"),
    (["onnx", "--weights", "{tmp}/b0.pth", "--variant", "b2"], "pass --variant b0"),
    (["onnx", "--opset", "11"], "opset 11 is not supported"),
    (["onnx", "--img-size", "250"], "image size 250 is not a multiple of 32"),
    (["onnx", "-o", "{tmp}/nowhere/m.onnx"], "output folder '{tmp}/nowhere' does not exist"),
    (["onnx", "--batch", "2", "--dynamic-batch"], "contradict"),
    (["validate", "{tmp}/absent.onnx"], "model file '{tmp}/absent.onnx' not found"),
    (["validate", "{tmp}/junk.pth"], "cannot validate 'junk.pth'"),
    (["fp16", "{tmp}/absent.onnx"], "model file '{tmp}/absent.onnx' not found"),
    (["fp16", "{tmp}/junk.pth"], "'junk.pth' is not an .onnx file"),
    (["quantize", "{tmp}/absent.onnx", "--int8", "--calib", "{tmp}"], "model file '{tmp}/absent.onnx' not found"),
    (["quantize", "{tmp}/absent.onnx", "--precision", "int8"], "INT8 needs calibration images"),
    (["quantize", "{tmp}/absent.onnx", "--precision", "fp16", "--calib", "{tmp}"],
     "--calib only applies to INT8: drop it, or pass --precision int8"),
    (["quantize", "{tmp}/absent.onnx", "--calib", "{tmp}", "--keep-fp32", "Gemm"],
     "--keep-fp32 cannot be used with --precision int8"),
    (["quantize", "{tmp}/absent.onnx", "--precision", "int8", "--fp16"], "--precision int8 and --fp16 contradict"),
    (["trt", "--precision", "fp32", "--int8"], "--precision fp32 and --int8 contradict"),
    (["sensitivity", "{tmp}/absent.onnx", "--calib", "{tmp}"], "model file '{tmp}/absent.onnx' not found"),
])
def test_user_errors_are_one_line_exit_2_no_files(run, tmp_path, b0, args, message):
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    (tmp_path / "junk.pth").write_bytes(b"\x00not a checkpoint")
    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    torch.save({"state_dict": b0[1]}, tmp_path / "b0.pth")
    before = set(tmp_path.rglob("*"))
    r = run(*[a.format(tmp=tmp_path) for a in args], "--json")
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message.format(tmp=tmp_path) in lines[-1]
    assert "Traceback" not in r.output
    assert set(tmp_path.rglob("*")) == before and not list(tmp_path.rglob("*.tmp"))


def test_debug_shows_the_traceback(tmp_path):
    r = CliRunner().invoke(cli, ["--debug", "onnx", "--opset", "11"])
    assert r.exit_code != 2 and r.exception is not None and "opset 11" in str(r.exception)


def test_info_json(run):
    r = run("info", "--json")
    d = json.loads(r.stdout)
    assert d["packages"]["torch"] == torch.__version__.split("+")[0] or d["packages"]["torch"].startswith(
        torch.__version__.split("+")[0])
    assert "CPUExecutionProvider" in d["onnxruntime_providers"]
    assert d["commands"]["onnx"]["ok"] and d["commands"]["info"]["ok"]


def test_real_subprocess_and_help_does_not_import_torch(tmp_path):
    code = ("import sys; from vanexport.cli import cli\n"
            "try: cli(['--help'])\nexcept SystemExit: pass\n"
            "print('TORCH' if 'torch' in sys.modules or 'onnx' in sys.modules else 'LIGHT')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip().endswith("LIGHT") and "onnx" in r.stdout
    out = tmp_path / "sub.onnx"
    r = subprocess.run([sys.executable, "-m", "vanexport", "onnx", "--variant", "b0", "--img-size", "64", "-o", str(out),
                        "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sha256"] and out.exists()
    r = subprocess.run([sys.executable, "-m", "vanexport", "onnx", "--img-size", "33"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: image size 33")


def test_help_lists_the_commands_in_the_order_of_the_journey(run):
    out = run("--help").stdout
    listed = [line.split()[0] for line in out.split("Commands:")[1].strip().splitlines()]
    assert listed == ["onnx", "quantize", "sensitivity", "trt", "validate", "inspect", "bench", "bundle", "unpack",
                      "predict", "triton", "deepstream", "info"]  # `fp16` is the old spelling: hidden


def test_one_precision_style_with_the_old_spellings_kept(run, b0_onnx_64, tmp_path):
    """`--precision` everywhere; `vanexport fp16 MODEL` and `quantize --int8` still work."""
    for args, out in ((["quantize", b0_onnx_64, "--precision", "fp16"], "a.onnx"),
                      (["fp16", b0_onnx_64], "b.onnx"),
                      (["quantize", b0_onnx_64, "--fp16"], "c.onnx")):
        r = run(*args, "--no-validate", "-o", tmp_path / out, "--json")
        assert r.exit_code == 0, r.output
        record = json.loads(r.stdout)
        assert record["precision"] == "fp16" and record["validation"] is None  # --no-validate: no check
    assert len({(tmp_path / n).read_bytes() for n in ("a.onnx", "b.onnx", "c.onnx")}) == 1
    for cmd in ("quantize", "sensitivity", "trt", "bundle", "bench", "predict", "triton", "deepstream"):
        assert "--precision" in run(cmd, "--help").stdout, cmd
    assert "--fp16 " not in run("trt", "--help").stdout  # hidden, but `trt --fp16` parses (above)


def test_fp16_is_checked_against_pytorch_by_default_and_the_verdict_printed(run, b0_onnx_64, tmp_path):
    r = run("quantize", b0_onnx_64, "--precision", "fp16", "-o", tmp_path / "m.onnx")
    assert r.exit_code == 0, r.output
    assert "checking FP16 against PyTorch FP32 on random batches and sample photos" in r.stderr
    assert "photos 64x64" in r.stdout and "PASS (FP16" in r.stdout


def test_a_failing_default_check_writes_nothing(run, b0_onnx_64, tmp_path, monkeypatch):
    """With trained weights (not random ones) a failing check refuses: nothing is written, exit code 2."""
    import vanexport.check.tolerances as tolerances
    from vanexport.formats.onnx_metadata import load_onnx, write_metadata, read_metadata

    proto = load_onnx(b0_onnx_64)
    meta = read_metadata(proto)
    meta.weights_layout = "official"  # as if trained: the verdict counts (the reference stays the same model)
    write_metadata(proto, meta)
    model = tmp_path / "trained.onnx"
    import onnx

    onnx.save(proto, model)
    strict = tolerances.Tolerance("fp16", atol=1e-9, min_top1_agree=1.0, min_cosine=1.0, check_atol=True)
    monkeypatch.setitem(tolerances.TOLERANCES, "fp16", strict)
    r = run("quantize", model, "--precision", "fp16", "-o", tmp_path / "m.onnx")
    assert r.exit_code == 2 and "fails its thresholds on random batches and sample photos" in r.stderr
    assert "nothing was written" in r.stderr and not (tmp_path / "m.onnx").exists()
    r = run("quantize", model, "--precision", "fp16", "-o", tmp_path / "m.onnx", "--no-validate")
    assert r.exit_code == 0 and (tmp_path / "m.onnx").exists()


def test_int8_of_random_weights_is_written_with_an_honest_warning(run, b0_onnx_64, tmp_path, monkeypatch):
    """A verdict on random weights says nothing: a failing one writes the file anyway, and says why."""
    import vanexport.check.tolerances as tolerances
    from PIL import Image
    from skimage import data

    monkeypatch.setitem(tolerances.TOLERANCES, "int8", tolerances.Tolerance("int8", min_top1_agree=1.01,
                                                                            check_atol=False))

    calib = tmp_path / "calib"
    calib.mkdir()
    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()).save(calib / f"{name}.png")
    r = run("quantize", b0_onnx_64, "--int8", "--calib", calib, "--method", "max", "-o", tmp_path / "m.onnx",
            "--json")
    assert r.exit_code == 0, r.output
    record = json.loads(r.stdout)
    assert record["validation"]["passed"] is False and (tmp_path / "m.onnx").exists()
    assert "Written anyway: the weights are random" in r.stderr
    assert "calibrating on only 3 inputs" in r.stderr  # fewer than the sensible minimum


def test_predict_warns_about_random_weights(run, b0_bundle, tmp_path):
    from PIL import Image

    Image.new("RGB", (80, 80), (200, 30, 30)).save(tmp_path / "red.png")
    r = run("predict", tmp_path / "red.png", "--model", b0_bundle[0], "--json")
    assert r.exit_code == 0, r.output
    assert "random weights: the classes below are meaningless" in r.stderr
    assert json.loads(r.stdout)["warnings"]
