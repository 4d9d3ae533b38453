"""A PyTorch reference that gives NaN is said to be one, by `onnx` before exporting and by `validate`, not blamed on
the exported file (a "mismatch" with an onnxsim or opset hint)."""
import torch
from click.testing import CliRunner

from vanexport.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def overflowing_checkpoint(b0, folder):
    """VAN-b0 weights whose PyTorch forward gives NaN: a negative BatchNorm variance (its square root)."""
    sd = dict(b0[1])
    sd["block1.0.norm1.running_var"] = -torch.ones_like(sd["block1.0.norm1.running_var"])
    path = folder / "nan.pth"
    torch.save({"state_dict": sd}, path)
    return path


def test_onnx_says_pytorch_gives_nan_before_exporting(b0, tmp_path, monkeypatch):
    import vanexport.export.onnx as export

    def no_export(*args, **kwargs):
        raise AssertionError("exported")

    monkeypatch.setattr(export, "_torch_export", no_export)
    weights = overflowing_checkpoint(b0, tmp_path)
    r = run("onnx", "--weights", weights, "--img-size", "64", "-o", tmp_path / "m.onnx")
    assert r.exit_code == 2
    [line] = r.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"error: PyTorch itself gives NaN logits (1 of 1 inputs tried): the weights ({weights})")
    assert "simplify" not in r.stderr and "opset" not in r.stderr and not (tmp_path / "m.onnx").exists()


def test_validate_says_pytorch_gives_nan(b0, tmp_path):
    weights = overflowing_checkpoint(b0, tmp_path)
    out = tmp_path / "m.onnx"
    assert run("onnx", "--weights", weights, "--img-size", "64", "--no-validate", "-o", out).exit_code == 0
    r = run("validate", out)
    assert r.exit_code == 2 and "PyTorch itself gives NaN logits" in r.stderr.strip().splitlines()[-1]
    assert "simplify" not in r.stderr and "mismatch" not in r.stderr and r.stdout == ""
