"""The device path (open a bundle, pick a backend, preprocess, classify; `vanexport predict`) runs in a process
where PyTorch, the onnx package and the rest of the export stack cannot be imported."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

BLOCKED = ("torch", "torchvision", "onnx", "onnxsim", "onnxscript", "polygraphy", "skimage", "sklearn", "scipy",
           "tritonclient")

BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys
    BLOCKED = {BLOCKED!r}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked for this test: {{name}}")
    sys.meta_path.insert(0, Block())
""")


def run_blocked(code: str, cwd, env_cache) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, VANEXPORT_CACHE=str(env_cache))
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(7)
    paths = []
    for i, (h, w) in enumerate([(120, 90), (64, 200), (300, 300)]):
        p = folder / f"p{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_the_blocker_blocks(tmp_path):
    r = run_blocked("import torch", tmp_path, tmp_path / "cache")
    assert r.returncode != 0 and "blocked for this test: torch" in r.stderr


def test_predict_cli_without_torch_equals_onnxruntime_on_the_source(b0_bundle, b0_onnx_64, photos, tmp_path):
    from vanexport.data.preprocess import preprocess_image
    from vanexport.device.classify import softmax
    from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from vanexport.device.bundle import open_bundle

    code = f"""
        import sys
        from vanexport.cli import main
        sys.argv = ["vanexport", "predict", *{[str(p) for p in photos]!r}, "--model", {str(b0_bundle[0])!r},
                    "--topk", "4", "--json", "--backend", "onnxruntime-cpu"]  # ONNX Runtime: the reference's bits
        try:
            main()
        finally:
            leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
            print("LEAKED", leaked, file=sys.stderr)
    """
    r = run_blocked(code, tmp_path, tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "LEAKED []" in r.stderr
    record = json.loads(r.stdout)
    assert record["backend"]["backend"] == "onnxruntime-cpu" and record["backend"]["precision"] == "fp32"

    pre = open_bundle(b0_bundle[0]).preprocessing
    ref = softmax(OnnxRuntimeBackend(b0_onnx_64)(np.stack([preprocess_image(Image.open(p), pre) for p in photos])))
    for pred, p in zip(record["predictions"], ref):
        assert [t["index"] for t in pred["top"]] == list(np.argsort(-p, kind="stable")[:4])
        assert [t["probability"] for t in pred["top"]] == pytest.approx(list(np.sort(p)[::-1][:4]), abs=1e-7)


def test_api_without_torch_on_a_bare_onnx_file(b0_onnx_64, tmp_path):
    code = f"""
        import numpy as np
        from vanexport.device.classify import load_classifier
        clf = load_classifier({str(b0_onnx_64)!r}, backend="onnxruntime-cpu")  # its bits are compared below
        x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32)
        np.save("out.npy", clf.logits(x))
        print(clf.choice.backend, clf.preprocessing.input_size, len(clf.labels))
    """
    r = run_blocked(code, tmp_path, tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["onnxruntime-cpu", "64", "1000"]
    from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend

    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), OnnxRuntimeBackend(b0_onnx_64)(x))


def test_importing_the_device_side_loads_neither_torch_nor_onnx(tmp_path):
    """Every module a device needs imports without the export stack (the layering puts them below it)."""
    code = """
        import importlib, pkgutil, vanexport
        names = ["vanexport.device", "vanexport.formats", "vanexport.runtime", "vanexport.data"]
        for pkg in names:
            module = importlib.import_module(pkg)
            for m in pkgutil.iter_modules(module.__path__, pkg + "."):
                importlib.import_module(m.name)
        importlib.import_module("vanexport.check.tolerances")
        importlib.import_module("vanexport.check.metrics")
        print("imported", len([m for m in __import__("sys").modules if m.startswith("vanexport")]))
    """
    r = run_blocked(code, tmp_path, tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[-1]) > 20


def test_predict_on_a_bundle_through_openvino_without_torch(b0_bundle, b0_onnx_64, photos, tmp_path):
    """A bundle's ONNX file runs on OpenVINO as it is (no IR shipped): the same classes and probabilities as ONNX
    Runtime on the source file, the precision that ran in the reason, and OpenVINO's compiled-model cache kept in
    vanexport's cache folder."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'vanexport[openvino]')")
    from vanexport.data.preprocess import preprocess_image
    from vanexport.device.bundle import open_bundle
    from vanexport.device.classify import softmax
    from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend

    code = f"""
        import sys
        from vanexport.cli import main
        sys.argv = ["vanexport", "predict", *{[str(p) for p in photos]!r}, "--model", {str(b0_bundle[0])!r},
                    "--backend", "openvino", "--topk", "3", "--json"]
        try:
            main()
        finally:
            print("LEAKED", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED), file=sys.stderr)
    """
    r = run_blocked(code, tmp_path, tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "LEAKED []" in r.stderr
    backend = json.loads(r.stdout)["backend"]
    assert (backend["backend"], backend["precision"], backend["file_precision"]) == ("openvino", "fp32", "fp32")
    assert "CPU on van_b0_64_fp32.onnx: fp32 (OpenVINO" in backend["reason"]
    assert "compute layers in f32" in backend["reason"]
    assert list((tmp_path / "cache" / "openvino").iterdir())  # the compiled model, for the next start

    pre = open_bundle(b0_bundle[0]).preprocessing
    ref = softmax(OnnxRuntimeBackend(b0_onnx_64)(np.stack([preprocess_image(Image.open(p), pre) for p in photos])))
    for pred, p in zip(json.loads(r.stdout)["predictions"], ref):
        assert [t["index"] for t in pred["top"]] == list(np.argsort(-p, kind="stable")[:3])
        assert [t["probability"] for t in pred["top"]] == pytest.approx(list(np.sort(p)[::-1][:3]), abs=1e-5)


def test_bf16_on_a_bare_onnx_file_through_openvino_without_torch(b0_onnx_64, tmp_path):
    pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'vanexport[openvino]')")
    from vanexport.runtime.openvino_backend import cpu_precisions

    code = f"""
        from vanexport.device.classify import load_classifier
        clf = load_classifier({str(b0_onnx_64)!r}, precision="bf16")
        print(clf.choice.backend, clf.choice.precision, clf.backend.precision, len(clf.labels))
    """
    r = run_blocked(code, tmp_path, tmp_path / "cache")
    if "bf16" in cpu_precisions():
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["openvino", "bf16", "bf16", "1000"]  # metadata read through OpenVINO
    else:
        assert r.returncode != 0 and "this CPU has no native BF16" in r.stderr
