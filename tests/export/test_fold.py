"""The CPU deploy form (`vanexport onnx --fold`): the faithful model's function within 1e-4, with no BatchNorm and
no layer scale left, refusing what cannot be folded, never mistaken for the faithful export."""
import collections
import warnings

import numpy as np
import onnx
import pytest
import torch

from vanexport.errors import VanexportError
from vanexport.export.fold import fold_van
from vanexport.export.onnx import export_onnx
from vanexport.formats.onnx_metadata import read_metadata
from vanexport.model.factory import load_model
from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend


def _ops(path) -> collections.Counter:
    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)


@pytest.fixture(scope="module")
def folded_64(tmp_path_factory):
    out = tmp_path_factory.mktemp("fold") / "van_b0_64_folded.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_onnx("b0", None, img_size=64, fold=True, output=out), out


def test_folded_export_is_the_faithful_model_without_batchnorm_or_layer_scale(folded_64, b0_onnx_64):
    """Random weights randomise the BatchNorm statistics and affines and the layer scales, so every fold is
    exercised with values far from identity; the export's own check compares with the unfolded PyTorch model."""
    result, path = folded_64
    assert result.folded and result.validation["passed"] and result.validation["overall"]["max_abs_err"] <= 1e-4
    model, _, _ = load_model("b0", None, quiet=True)
    x = np.random.default_rng(3).uniform(-1, 1, (3, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(OnnxRuntimeBackend(path)(x) - ref).max() <= 1e-4
    folded, faithful = _ops(path), _ops(b0_onnx_64)
    assert faithful["BatchNormalization"] == 26 and folded["BatchNormalization"] == 0
    assert folded["Conv"] == faithful["Conv"] == 108
    # per block (13 in b0) BN1, BN2, the inner shortcut's Add and layer scale 1's Mul are gone (onnxsim already
    # folds layer scale 2 into fc2 in the faithful graph)
    assert (faithful["Add"] - folded["Add"], faithful["Mul"] - folded["Mul"]) == (13, 13)
    assert read_metadata(path).extra == {"form": "folded"} and "form" not in read_metadata(b0_onnx_64).extra


@pytest.mark.parametrize("variant", ["b0", pytest.param("b2", marks=pytest.mark.slow)])
def test_fold_is_exact_algebra_on_every_variant_depth(variant):
    model, _, _ = load_model(variant, None, quiet=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (fold_van(model)(x) - model(x)).abs().max() <= 1e-4
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fold_van(model).modules())


def test_a_block_that_cancels_its_residual_stream_is_refused():
    model, _, _ = load_model("b0", None, quiet=True)
    block = model.block2[1]
    with torch.no_grad():  # 1 + layer_scale_1 * a1 = 0 for channel 5: the stream's channel is wiped
        a1 = block.norm1.weight[5] / torch.sqrt(block.norm1.running_var[5] + block.norm1.eps)
        block.layer_scale_1[5] = -1.0 / a1
    with pytest.raises(VanexportError, match="cannot fold stage 2 block 2: channel 5 cancels its residual stream"):
        fold_van(model)


@pytest.mark.slow
def test_folded_digits_model_equals_the_trained_model(digits, tmp_path):
    out = tmp_path / "digits_folded.onnx"
    result = export_onnx(None, digits.weights, img_size=64, fold=True, output=out)
    assert result.validation["passed"] and result.validation["overall"]["max_abs_err"] <= 1e-4
    assert result.validation["overall"]["top1_agree"] == 1.0


def test_a_folded_file_is_never_reused_as_the_faithful_export(folded_64, tmp_path):
    from vanexport.pipeline import ModelSource, ensure_onnx

    import shutil

    target = tmp_path / "van_b0_64.onnx"
    shutil.copy(folded_64[1], target)
    artifact, result = ensure_onnx(ModelSource("b0"), target, img_size=64, validate=False)
    assert not artifact.reused and result is not None and "form" not in read_metadata(target).extra


def test_cli_fold_writes_the_deploy_form_under_its_own_name(tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from vanexport.cli import cli
    from vanexport.export.onnx import default_output_path

    assert str(default_output_path("b0", 224, None, False, folded=True)) == "engines/van_b0_224_folded.onnx"
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["onnx", "--img-size", "64", "--fold", "--json"])
    assert r.exit_code == 0, r.output
    record = json.loads(r.stdout)
    assert record["folded"] and record["path"] == "engines/van_b0_64_folded.onnx" and record["validation"]["passed"]
    assert _ops(tmp_path / record["path"])["BatchNormalization"] == 0
