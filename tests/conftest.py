import os

import pytest

# Downloads in tests go to a temp cache, never the user's.
@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VANEXPORT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def b0():
    """A VAN-b0 with random weights and random BatchNorm statistics (seed 0), and its state dict."""
    from vanexport.model.factory import load_model

    model, variant, info = load_model("b0", None, quiet=True)
    return model, {k: v.clone() for k, v in model.state_dict().items()}


def pytest_collection_modifyitems(config, items):
    os.environ.setdefault("VANEXPORT_TESTING", "1")


@pytest.fixture(scope="session")
def b0_onnx_64(tmp_path_factory):
    """A VAN-b0 (random weights, seed 0) exported at 64x64 with a dynamic batch: small and quick to run."""
    import warnings

    from vanexport.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "van_b0_64.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx("b0", None, img_size=64, output=out, validate=False)
    return out


@pytest.fixture(scope="session")
def b0_bundle(tmp_path_factory, b0_onnx_64):
    """A bundle made from `b0_onnx_64` (FP32, ImageNet labels, the sample photos as check images)."""
    from vanexport.ship.bundle import make_bundle

    out = tmp_path_factory.mktemp("bundle") / "van_b0_bundle.tar.gz"
    result = make_bundle(model=b0_onnx_64, output=out)
    return out, result
