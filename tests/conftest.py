import os

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. On a busy 2-core machine (CI beside
# other jobs) spinning made PyTorch inference ~20x slower (a VAN-b0 batch of 8 at 64x64: 11 s vs 0.5 s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

# Downloads in tests go to a temp cache, never the user's.
@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VANEXPORT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def small_entropy_histograms(monkeypatch):
    """256-bin entropy histograms (65 candidate ranges to search, not 961), for tests where entropy calibration runs
    but its ranges are not what is checked. tests/precision/test_entropy.py checks the search at 512 and 2048 bins,
    and test_precision.py the real 2048-bin calibration of the trained model."""
    import vanexport.precision.entropy as entropy

    monkeypatch.setattr(entropy, "NUM_BINS", 256)


@pytest.fixture(scope="session")
def b0():
    """A VAN-b0 with random weights and random BatchNorm statistics (seed 0), and its state dict."""
    from vanexport.model.factory import load_model

    model, variant, info = load_model("b0", None, quiet=True)
    return model, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="session", autouse=True)
def _references_checked_against_transformers():
    """Every PyTorch reference a fidelity check runs (check.compare.ReferenceOutputs: validate, quantize, trt,
    bundle checks) is compared with transformers' VAN holding the same weights, once per weights and session
    (tests/independent_reference.py): a slip in our model cannot pass as its own reference."""
    from vanexport.check.compare import ReferenceOutputs

    checked, original = set(), ReferenceOutputs.__init__

    def checked_init(self, torch_backend):
        original(self, torch_backend)
        if self.weights in checked:
            return
        from independent_reference import assert_matches  # torch and transformers: only once a reference runs
        from vanexport.model.van import VAN

        if isinstance(torch_backend.model, VAN):
            assert_matches(torch_backend.model)
            checked.add(self.weights)

    ReferenceOutputs.__init__ = checked_init
    yield
    ReferenceOutputs.__init__ = original


def run_order(item) -> int:
    """The digits model's own tests first, then the tests that do not need the model, then those that do. In a
    parallel run the first worker trains the model (0.5 to 1.5 min on a cold machine) while the other works through
    tests that do not need it; in collection order the other worker met a test that needs the model after 75 s and
    waited 20 s for it."""
    if not item.get_closest_marker("digits"):
        return 1
    return 0 if item.path.parent.name == "zoo" else 2


def pytest_collection_modifyitems(config, items):
    os.environ.setdefault("VANEXPORT_TESTING", "1")
    for item in items:
        # `digits`: the test asks for the fixture, or (the docs examples) asks for it at run time and says so.
        if "digits" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.digits)
        if item.get_closest_marker("digits"):  # slow the first time: the model trains once per machine, then is cached
            item.add_marker(pytest.mark.slow)
    items.sort(key=run_order)  # stable: collection order within each group


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
def b0_onnx_224(tmp_path_factory):
    """(ExportResult, path): a VAN-b0 (random weights, seed 0) exported at 224x224 with a dynamic batch, validated."""
    import warnings

    from vanexport.export.onnx import export_onnx

    path = tmp_path_factory.mktemp("onnx224") / "van_b0_224.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_onnx("b0", output=path), path


@pytest.fixture(scope="session")
def b0_bundle(tmp_path_factory, b0_onnx_64):
    """A bundle made from `b0_onnx_64` (FP32, ImageNet labels, the sample photos as check images)."""
    from vanexport.ship.bundle import make_bundle

    out = tmp_path_factory.mktemp("bundle") / "van_b0_bundle.tar.gz"
    result = make_bundle(model=b0_onnx_64, output=out)
    return out, result


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """A VAN-b0 trained on scikit-learn's digits (64x64, 10 classes), its FP32 ONNX, and calib/ + heldout/
    ImageFolder-style PNG folders. Training runs once per recipe and machine (the weights are cached outside the
    per-test cache, in $VANEXPORT_TRAINED_CACHE, default ~/.cache/vanexport/trained); the export and the images once
    per run, in the run's temporary folder that pytest-xdist's workers share; each worker gets a copy."""
    import shutil

    from vanexport.zoo.digits import prepare, prepared

    run_root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_root = run_root.parent  # .../pytest-N/popen-gw0 -> .../pytest-N, the same for every worker
    copy = tmp_path_factory.mktemp("digits") / "digits"
    shutil.copytree(prepared(run_root, progress=lambda m: print(f"[digits] {m}")), copy)
    return prepare(copy)  # everything is there: only the record is made


@pytest.fixture
def fake_gpu(monkeypatch):
    """This process's CUDA driver and `tensorrt` module replaced by the stand-ins of tests/stand_ins.py (one A10;
    change `fake_gpu.driver.devices` for others)."""
    import sys
    from types import SimpleNamespace

    from stand_ins import FakeDriver, FakeTensorRT
    from vanexport import machine

    driver = FakeDriver()
    trt = FakeTensorRT(driver)
    monkeypatch.setattr(machine, "_load_libcuda", lambda: driver)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return SimpleNamespace(driver=driver, trt=trt)


@pytest.fixture
def make_manifest():
    """make(plan_path, ...) -> the EngineManifest a build on an A10 with TensorRT 10.16.1.11 would write for it."""
    from vanexport.files import sha256_file
    from vanexport.machine import GpuInfo
    from vanexport.formats.engine_manifest import EngineManifest
    from vanexport.trt.settings import BuildSettings

    def make(plan_path, trt_version="10.16.1.11", gpu=None, version_compatible=False, hw="none", settings=None,
             source_sha="ab" * 32, validated=True) -> EngineManifest:
        settings = settings or BuildSettings(precision="fp16")
        gpu = gpu or GpuInfo("NVIDIA A10", "8.6", "12.4")
        return EngineManifest.from_dict(dict(
            plan={"file": plan_path.name, "sha256": sha256_file(plan_path), "bytes": plan_path.stat().st_size},
            source_onnx={"path": "engines/van_b0_224_fp16.onnx", "sha256": source_sha, "precision": settings.precision},
            tensorrt={"version": trt_version, "version_compatible": version_compatible, "hardware_compatibility": hw,
                      "typing": "strong", "dla_core": None},
            gpu=gpu.to_dict(), precision=settings.precision,
            inputs=[{"name": "input", "dtype": "float32", "shape": [-1, 3, 224, 224],
                     "profile": {"min": [1, 3, 224, 224], "opt": [8, 3, 224, 224], "max": [32, 3, 224, 224]}}],
            outputs=[{"name": "logits", "dtype": "float32", "shape": [-1, 1000]}],
            preprocessing={"input_size": 224}, num_classes=1000, model={"variant": "b0"},
            build={"settings": settings.to_dict(), "seconds": 1.0}, vanexport_version="0.1.0",
            validation={"passed": True} if validated else None))

    return make
