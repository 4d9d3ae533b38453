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
