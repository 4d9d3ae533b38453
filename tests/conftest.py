import os

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. On a busy 2-core machine (CI beside
# other jobs) spinning made PyTorch inference ~20x slower (a VAN-b0 batch of 8 at 64x64: 11 s vs 0.5 s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

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
def digits(tmp_path_factory):
    """A VAN-b0 trained on scikit-learn's digits (64x64, 10 classes), its FP32 ONNX, and calib/ + heldout/
    ImageFolder-style PNG folders. Training runs once per recipe: the weights are cached outside the per-test
    cache, in $VANEXPORT_TRAINED_CACHE (default ~/.cache/vanexport/trained)."""
    from vanexport.zoo.digits import prepare

    return prepare(tmp_path_factory.mktemp("digits"), progress=lambda m: print(f"[digits] {m}"))
