"""The device install, for real: a fresh virtual environment, `pip install "vanexport[cpu]"` of this source tree
(no PyTorch, no onnx, no Polygraphy come with it), then unpack, predict and deepstream on a bundle made here; and a
workstation command failing in one line that names the export extra. Needs pip to reach the package registry
(skipped, saying so, where it cannot)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vanexport

ROOT = Path(vanexport.__file__).parent.parent
EXPORT_ONLY = ("torch", "onnx", "onnxsim", "onnxscript", "polygraphy", "skimage", "huggingface_hub")


def run(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def device_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("device_install")
    src = tmp / "src"  # this tree's package alone: what a release would hold
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "vanexport", src / "vanexport", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp / "venv"
    # Without a pip of its own: this process's pip installs into it (`pip --python`), 7 s quicker than seeding one.
    r = run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=300)
    assert r.returncode == 0, r.stderr
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "--disable-pip-version-check"]
    probe = run([*pip, "download", "--no-deps", "-q", "-d", tmp / "probe", "click"], timeout=120)
    if probe.returncode != 0:
        pytest.skip("pip cannot reach the package registry here: "
                    + ((probe.stderr.strip().splitlines() or ["no output"])[-1])[:200])
    r = run([*pip, "install", "-q", f"{src}[cpu]"], timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    return venv


@pytest.mark.slow
def test_a_device_install_runs_bundles_without_the_export_stack(device_venv, b0_bundle, b0_onnx_64, tmp_path):
    from PIL import Image

    from vanexport.data.preprocess import preprocess_image
    from vanexport.device.bundle import open_bundle
    from vanexport.device.classify import softmax
    from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend

    py, cli = device_venv / "bin" / "python", device_venv / "bin" / "vanexport"
    r = run([py, "-c", "import importlib.util, json; print(json.dumps([m for m in "
             f"{EXPORT_ONLY!r} if importlib.util.find_spec(m)]))"])
    assert json.loads(r.stdout) == []  # the real install brought none of them
    env = dict(os.environ, VANEXPORT_CACHE=str(tmp_path / "cache"))
    env.pop("PYTHONPATH", None)  # the venv's own vanexport, not this tree's
    bundle = b0_bundle[0]

    r = run([cli, "unpack", bundle, "-o", tmp_path / "unpacked", "--json"], env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "unpacked" / "manifest.json").is_file()

    rng = np.random.default_rng(11)
    photos = []
    for i, (h, w) in enumerate([(90, 120), (200, 64)]):
        photos.append(tmp_path / f"p{i}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(photos[-1])
    r = run([cli, "predict", *photos, "--model", bundle, "--topk", "3", "--json"], env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)
    assert record["backend"]["backend"] == "onnxruntime-cpu"
    pre = open_bundle(bundle).preprocessing
    ref = softmax(OnnxRuntimeBackend(b0_onnx_64)(np.stack([preprocess_image(Image.open(p), pre) for p in photos])))
    for pred, p in zip(record["predictions"], ref):
        assert [t["index"] for t in pred["top"]] == list(np.argsort(-p, kind="stable")[:3])

    ds = tmp_path / "ds"
    ds.mkdir()
    r = run([cli, "deepstream", bundle, "-o", ds / "config_infer.txt", "--json"], env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    b = open_bundle(bundle)
    np.testing.assert_allclose(OnnxRuntimeBackend(made["onnx"])(b.check_inputs()), softmax(b.expected_logits()),
                               atol=1e-6)  # the softmax ONNX the device wrote without the onnx package
    assert (ds / "config_infer_preprocess.txt").is_file()

    r = run([cli, "info", "--json"], env=env, timeout=600)
    commands = json.loads(r.stdout)["commands"]
    assert commands["predict"]["ok"] and commands["deepstream"]["ok"] and commands["unpack"]["ok"]
    assert not commands["onnx"]["ok"] and "torch" in commands["onnx"]["missing"]

    # the build on a device needs only TensorRT: without it, that is what it says (not torch or onnx)
    r = run([cli, "trt", "--bundle", bundle, "--fp32"], env=env, timeout=600)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(
        "error: TensorRT is not installed (no 'tensorrt' Python package)")

    work = tmp_path / "work"
    work.mkdir()
    r = run([cli, "onnx", "--img-size", "64"], env=env, cwd=work, timeout=600)
    assert r.returncode == 2 and r.stdout == ""
    *progress, last = r.stderr.strip().splitlines()
    assert last == ("error: torch is not installed: exporting, converting and validating need the export extra "
                    "(PyTorch, ONNX, Polygraphy): pip install 'vanexport[export]' (a device install has only what "
                    "running a bundle needs)")
    assert all(line.startswith("•") for line in progress)  # progress lines only: no traceback
    assert list(work.iterdir()) == []


# `make setup-jetson`: what its pip commands would install into a venv that sees JetPack's packages.
JETPACK_SITE = {"tensorrt": "10.3.0", "torch": "2.5.0a0+872d972e41.nv24.8", "onnxruntime-gpu": "1.20.0",
                "numpy": "1.21.5"}  # JetPack 6 (TensorRT 10.3); numpy: Ubuntu 22.04's python3-numpy, under JetPack 6
KEEP_OUT = ("tensorrt", "torch", "onnxruntime", "numpy", "nvidia-")


def jetson_pip_commands(makefile: Path) -> list[list[str]]:
    """The `pip install` lines of the setup-jetson recipe, with the Makefile's own variables filled in."""
    import shlex

    text = makefile.read_text()
    variables = dict(re.findall(r"^([A-Z_]+)\s*\??=\s*(.*?)\s*(?:#.*)?$", text, re.M))
    recipe = re.search(r"^\$\(JETSON_VENV\)/\.installed:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    commands = []
    for line in recipe.splitlines():
        line = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), line.strip())
        words = shlex.split(line)
        if words[0].endswith("/pip") and words[1] == "install":
            commands.append([w for w in words[2:] if w != "-q"])
    return commands


@pytest.mark.slow
def test_setup_jetson_installs_nothing_over_jetpack(tmp_path):
    commands = jetson_pip_commands(ROOT / "Makefile")
    assert len(commands) == 2 and ["--no-deps", "-e", "."] == commands[0]
    venv = tmp_path / "venv"
    r = run([sys.executable, "-m", "venv", "--without-pip", venv], timeout=300)
    assert r.returncode == 0, r.stderr
    site = next((venv / "lib").glob("python3*/site-packages"))
    for name, version in JETPACK_SITE.items():  # what --system-site-packages shows on a Jetson
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "--disable-pip-version-check"]
    installed = []
    for i, args in enumerate(commands):
        report = tmp_path / f"report{i}.json"
        r = run([*pip, "install", "--dry-run", "--report", report, *args], cwd=ROOT, timeout=600)
        if r.returncode != 0 and "Could not find a version" in r.stderr + r.stdout:
            pytest.skip("pip cannot reach the package registry here")
        assert r.returncode == 0, r.stderr[-2000:]
        installed += [i["metadata"]["name"].lower() for i in json.loads(report.read_text())["install"]]
    assert "vanexport" in installed and "click" in installed  # the plan installs something
    assert [n for n in installed if n.replace("_", "-").startswith(KEEP_OUT)] == []
