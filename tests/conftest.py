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
