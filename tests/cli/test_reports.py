"""What a report says about the user's own weights: their layout, not "official" as if they were the official ones."""
import torch
from click.testing import CliRunner

from vanexport.cli import cli


def test_own_weights_in_the_authors_layout_are_not_called_official(b0, tmp_path):
    weights = tmp_path / "mine.pth"
    torch.save({"state_dict": b0[1]}, weights)  # the authors' layout: weights under `state_dict`, their key names
    r = CliRunner().invoke(cli, ["onnx", "--weights", str(weights), "--img-size", "64", "--no-validate",
                                 "-o", str(tmp_path / "m.onnx")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    [line] = [x for x in r.stdout.splitlines() if "weights:" in x]
    assert f"{weights} (the authors' checkpoint layout, sha256" in line and "official" not in line
