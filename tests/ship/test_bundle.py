"""`vanexport bundle`: contents, manifest, round trip through the runtime, and adding engines atomically."""
import json
import tarfile

import numpy as np
import pytest

from vanexport.errors import VanexportError
from vanexport.files import sha256_file
from vanexport.device.archive import read_bundle
from vanexport.formats.bundle_manifest import SCHEMA_VERSION
from vanexport.device.bundle import open_bundle
from vanexport.ship.bundle import add_engine_to_bundle, make_bundle
from image_folders import class_subset


def _members(path):
    with tarfile.open(path) as t:
        return t.getnames()


def test_bundle_contents_and_manifest(b0_bundle, b0_onnx_64):
    path, result = b0_bundle
    names = _members(path)
    assert names[0] == "manifest.json"
    assert sorted(names[1:]) == ["README.txt", "check/images.npz", "labels.txt", "onnx/van_b0_64_fp32.onnx"]
    m = read_bundle(path)
    assert m["schema_version"] == SCHEMA_VERSION and m["model"]["variant"] == "b0" and m["model"]["num_classes"] == 1000
    assert m["preprocessing"]["mean"] == [0.5, 0.5, 0.5] and m["preprocessing"]["resize_size"] == 71
    assert m["io"]["input"] == {"name": "input", "dtype": "float32", "shape": ["batch", 3, 64, 64], "layout": "NCHW"}
    # the bundled ONNX is the source file, byte for byte, and every file's hash is recorded
    assert m["models"][0]["sha256"] == sha256_file(b0_onnx_64)
    assert set(m["files"]) == set(names[1:])
    # fidelity measured against PyTorch when the bundle was made
    fid = result.models[0]["fidelity"]
    assert fid["passed"] and fid["reference"] == "pytorch" and fid["max_abs_err"] < 1e-4 and fid["n"] > 0
    assert m["models"][0]["validation"]["overall"]["top1_agree"] == fid["top1_agree"]
    assert m["models"][0]["made_by"]["weights"]["source"] == "random(seed=0)"
    assert m["created_by"]["vanexport"] and m["created_by"]["onnxruntime"]
    assert m["labels"]["count"] == 1000 and "imagenet-1k" in m["labels"]["source"]
    assert result.sha256 == sha256_file(path)


def test_round_trip_runtime_equals_onnxruntime_on_the_source(b0_bundle, b0_onnx_64):
    from PIL import Image

    from vanexport.data.preprocess import preprocess_image
    from vanexport.device.classify import load_classifier, softmax
    from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend

    b = open_bundle(b0_bundle[0])
    source = OnnxRuntimeBackend(b0_onnx_64)
    x = b.check_inputs()
    # what the bundle says the check images give is what the source ONNX gives
    np.testing.assert_array_equal(b.expected_logits("fp32"), source(x))

    clf = load_classifier(b0_bundle[0], backend="onnxruntime-cpu")  # the same runtime as the source: equal bits
    assert clf.choice.backend == "onnxruntime-cpu"
    np.testing.assert_array_equal(clf.logits(x), source(x))
    rng = np.random.default_rng(1)
    photos = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in ((90, 120), (64, 64), (200, 70))]
    tops = clf.classify(photos, topk=3)
    ref = softmax(source(np.stack([preprocess_image(p, b.preprocessing) for p in photos])))
    for top, p in zip(tops, ref):
        assert [t["index"] for t in top] == list(np.argsort(-p, kind="stable")[:3])
        assert [t["probability"] for t in top] == pytest.approx(list(np.sort(p)[::-1][:3]), abs=1e-7)
        assert top[0]["label"] == b.labels[top[0]["index"]]


def test_open_bundle_reuses_the_cache_and_re_unpacks_when_tampered(b0_bundle):
    b = open_bundle(b0_bundle[0])
    labels = b.file("labels.txt")
    assert open_bundle(b0_bundle[0]).root == b.root
    labels.write_text("tampered\n")
    b2 = open_bundle(b0_bundle[0])
    assert b2.root == b.root and b2.labels[0] == "tench, Tinca tinca"


@pytest.fixture
def fake_engine(tmp_path, make_manifest):
    """fake_engine(onnx_sha, ...) -> a plan file and its manifest as `vanexport trt` writes them.

    The plan is opaque bytes: bundling treats plans as files and never parses them."""
    from vanexport.machine import GpuInfo
    from vanexport.formats.engine_manifest import manifest_path, write_manifest

    def make(onnx_sha, name="van_b0_64_fp16.plan", cc="8.7", plan_bytes=b"\x00opaque plan bytes"):
        plan = tmp_path / name
        plan.write_bytes(plan_bytes)
        m = make_manifest(plan, trt_version="10.3.0.30", gpu=GpuInfo("Orin", cc), source_sha=onnx_sha)
        write_manifest(m, manifest_path(plan))
        return plan

    return make


def test_add_engine_to_bundle(tmp_path, b0_bundle, fake_engine):
    import shutil

    bundle = tmp_path / "b.tar.gz"
    shutil.copy(b0_bundle[0], bundle)
    onnx_sha = read_bundle(bundle)["models"][0]["sha256"]
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"timing cache bytes")
    plan = fake_engine(onnx_sha)
    result = add_engine_to_bundle(bundle, plan, timing_cache=cache, validation={"passed": True, "max_abs_err": 1e-3})
    m = read_bundle(bundle)  # the new archive passes every check
    assert [e["file"] for e in m["engines"]] == ["engines/van_b0_64_fp16.plan"]
    e = m["engines"][0]
    assert e["compute_capability"] == "8.7" and e["tensorrt_version"] == "10.3.0.30"
    assert e["validation"] == {"passed": True, "max_abs_err": 1e-3}  # the device's check replaces the build's
    assert e["source"] == "onnx/van_b0_64_fp32.onnx"
    assert m["timing_cache"] == "timing.cache" and "timing.cache" in m["files"]
    assert m["history"][-1]["event"] == "engine van_b0_64_fp16.plan added"
    assert result.sha256 == sha256_file(bundle)
    b = open_bundle(bundle)
    assert b.file("engines/van_b0_64_fp16.plan").read_bytes() == plan.read_bytes()
    assert b.engines[0].manifest.gpu.compute_capability == "8.7"
    assert b.file("engines/van_b0_64_fp16.manifest.json").is_file()
    # the same engine name again replaces it instead of adding a second one
    plan2 = fake_engine(onnx_sha, cc="9.0", plan_bytes=b"\x00other plan bytes")
    add_engine_to_bundle(bundle, plan2)
    m = read_bundle(bundle)
    assert len(m["engines"]) == 1 and m["engines"][0]["compute_capability"] == "9.0"
    assert open_bundle(bundle).file("engines/van_b0_64_fp16.plan").read_bytes() == b"\x00other plan bytes"


def test_add_engine_refuses_foreign_or_changed_plans_and_keeps_the_bundle(tmp_path, b0_bundle, fake_engine):
    import shutil

    bundle = tmp_path / "b.tar.gz"
    shutil.copy(b0_bundle[0], bundle)
    before = sha256_file(bundle)
    foreign = fake_engine("0" * 64)
    with pytest.raises(VanexportError, match="not built from any ONNX file in this bundle"):
        add_engine_to_bundle(bundle, foreign)
    changed = fake_engine(read_bundle(bundle)["models"][0]["sha256"], name="x.plan")
    changed.write_bytes(b"changed after the build")
    with pytest.raises(VanexportError, match="does not match the sha256 in its manifest"):
        add_engine_to_bundle(bundle, changed)
    (tmp_path / "nomanifest.plan").write_bytes(b"x")
    with pytest.raises(VanexportError, match="has no manifest"):
        add_engine_to_bundle(bundle, tmp_path / "nomanifest.plan")
    assert sha256_file(bundle) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_interrupted_add_leaves_the_old_bundle(tmp_path, b0_bundle, monkeypatch, fake_engine):
    import shutil

    from vanexport.ship import bundle as bundle_mod

    bundle = tmp_path / "b.tar.gz"
    shutil.copy(b0_bundle[0], bundle)
    before = sha256_file(bundle)
    plan = fake_engine(read_bundle(bundle)["models"][0]["sha256"])

    def interrupted(out, manifest, files):
        with open(out, "wb") as f:
            f.write(b"half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_mod, "write_archive", interrupted)
    with pytest.raises(KeyboardInterrupt):
        add_engine_to_bundle(bundle, plan)
    assert sha256_file(bundle) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_engines_at_bundle_time(tmp_path, b0_onnx_64, fake_engine):
    plan = fake_engine(sha256_file(b0_onnx_64))
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"thing {i}\n" for i in range(1000)))
    r = make_bundle(model=b0_onnx_64, engines=[plan], labels=labels, output=tmp_path / "b.tar.gz", validate=False)
    assert [e["file"] for e in r.engines] == ["engines/van_b0_64_fp16.plan"]
    assert r.models[0]["fidelity"] is None  # validate=False: no fidelity is claimed
    assert "engines/van_b0_64_fp16.manifest.json" in r.files
    assert open_bundle(tmp_path / "b.tar.gz").labels[999] == "thing 999"


@pytest.mark.parametrize("kwargs, message", [
    ({"precisions": "fp32,fp64"}, "unknown precision fp64"),
    ({"precisions": "fp32,int8"}, "INT8 needs calibration images"),
    ({"engines": ["missing.plan"]}, "engine 'missing.plan' not found"),
    ({"timing_cache": "missing.cache"}, "timing cache 'missing.cache' not found"),
    ({"output": "no/such/folder/b.tar.gz"}, "output folder 'no/such/folder' does not exist"),
])
def test_user_errors_before_any_work(kwargs, message, b0_onnx_64):
    with pytest.raises(VanexportError, match=message):
        make_bundle(model=b0_onnx_64, **kwargs)


def test_labels_file_must_fit_the_model(tmp_path, b0_onnx_64):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    with pytest.raises(VanexportError, match="labels file has 2 lines but the model has 1000 classes"):
        make_bundle(model=b0_onnx_64, labels=labels, output=tmp_path / "b.tar.gz")
    assert not (tmp_path / "b.tar.gz").exists()


def test_checkpoint_class_names(tmp_path, b0):
    """mmpretrain checkpoints carry their class names in meta.dataset_meta.classes."""
    import torch

    from vanexport.ship.bundle import _labels

    ckpt = tmp_path / "mm.pth"
    names = [f"n{i}" for i in range(1000)]
    torch.save({"meta": {"dataset_meta": {"classes": tuple(names)}}, "state_dict": b0[1]}, ckpt)
    assert _labels(None, None, {"source": str(ckpt)}, 1000) == (names, "the checkpoint's own class names")
    plain = tmp_path / "plain.pth"
    torch.save(b0[1], plain)
    assert _labels(None, None, {"source": str(plain)}, 1000)[1].startswith("imagenet-1k")
    assert _labels(None, None, {"source": "random(seed=0)"}, 10)[0][:2] == ["class_0", "class_1"]


def test_an_engine_ships_with_the_fp16_file_it_was_built_from(tmp_path, b0_onnx_64, make_manifest):
    """`vanexport trt --fp16` converts, then builds; bundling that plan takes its FP16 source file as is (by hash),
    rather than converting again, so the plan and the bundled FP16 ONNX belong together."""
    from vanexport.precision.fp16 import convert_fp16
    from vanexport.machine import GpuInfo
    from vanexport.formats.engine_manifest import manifest_path, write_manifest

    fp16 = convert_fp16(b0_onnx_64, tmp_path / "van_b0_64_fp16.onnx")
    plan = tmp_path / "van_b0_64_fp16.plan"
    plan.write_bytes(b"opaque bytes standing in for a plan")
    m = make_manifest(plan, gpu=GpuInfo("Orin", "8.7"), source_sha=fp16.sha256)
    m.source_onnx.path = fp16.path
    write_manifest(m, manifest_path(plan))
    r = make_bundle(model=b0_onnx_64, engines=[plan], output=tmp_path / "b.tar.gz", validate=False)
    assert [(x["precision"], x["sha256"]) for x in r.models] == [("fp32", sha256_file(b0_onnx_64)), ("fp16", fp16.sha256)]
    assert r.engines[0]["source"] == "onnx/van_b0_64_fp16.onnx"
    # once the source file is gone (or changed), the plan no longer belongs to anything in the bundle
    (tmp_path / "van_b0_64_fp16.onnx").write_bytes(b"changed")
    with pytest.raises(VanexportError, match="not built from any ONNX file in this bundle"):
        make_bundle(model=b0_onnx_64, engines=[plan], output=tmp_path / "b2.tar.gz", validate=False)


@pytest.mark.usefixtures("small_entropy_histograms")  # the INT8 model is judged, not its calibration's ranges
def test_fp16_and_int8_bundle_of_a_trained_model(tmp_path, digits):
    """A real (trained) model: every precision validated on held-out images, accuracy recorded, and the bundle
    classifies held-out digits correctly on the device path."""
    from PIL import Image

    from vanexport.data.images import list_images
    from vanexport.device.classify import load_classifier

    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"digit {i}\n" for i in range(10)))
    # 12 held-out images per class keep the three validations quick
    heldout = class_subset(digits.heldout_dir, tmp_path / "heldout", 12)
    r = make_bundle(model=digits.onnx, weights=digits.weights, precisions="int8,fp16", calib=digits.calib_dir,
                    num_calib=64, images=heldout, labels=labels, output=tmp_path / "d.tar.gz")
    assert [m["precision"] for m in r.models] == ["fp32", "fp16", "int8"]
    for m in r.models:
        f = m["fidelity"]
        assert f["passed"] and f["n"] == 120 and f["reference_accuracy"] >= 0.9
        assert f["accuracy"] >= f["reference_accuracy"] - 0.02
    fp32, fp16, int8 = (m["fidelity"]["max_abs_err"] for m in r.models)
    assert fp32 < 1e-4 < int8 and fp16 < int8  # the precisions are really different files
    m = read_bundle(tmp_path / "d.tar.gz")
    assert m["models"][2]["made_by"]["calibration"]["method"] == "entropy"

    clf = load_classifier(tmp_path / "d.tar.gz")  # the CPU way measured fastest here, among the validated files
    assert clf.choice.candidate.precision in ("fp32", "fp16", "int8") and "ms" in clf.choice.reason
    files = [p for p in list_images(heldout) if p.parent.name in ("3", "7")][:6]
    tops = clf.classify([Image.open(p) for p in files], topk=1)
    assert sum(t[0]["label"] == f"digit {p.parent.name}" for t, p in zip(tops, files)) >= 5


def test_check_engine_against_bundle(b0_bundle):
    """The on-device check of a new engine: the bundled ONNX itself passes exactly; outputs that change the
    winning class fail, naming the failed criterion."""
    from vanexport.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from vanexport.device.bundle import check_engine_against_bundle

    b = open_bundle(b0_bundle[0])
    same = OnnxRuntimeBackend(b.onnx("fp32"))
    ok = check_engine_against_bundle(b, same, "fp32", max_batch=3)
    assert ok["passed"] and ok["overall"]["max_abs_err"] == 0.0 and ok["overall"]["n"] == 8

    def shifted(x):  # a wrong engine: every logit off by a class-dependent amount
        out = same(x)
        return out + np.linspace(0, 1, out.shape[1], dtype=np.float32)

    bad = check_engine_against_bundle(b, shifted, "fp32")
    assert not bad["passed"] and "max abs error" in bad["failures"][0]
    assert check_engine_against_bundle(b, shifted, "fp32")["tolerance"]["atol"] == 1e-3  # the FP32 engine tolerance


@pytest.mark.slow
@pytest.mark.usefixtures("small_entropy_histograms")  # paths are checked, not ranges
def test_no_path_of_the_building_machine_travels_in_the_bundle(b0, tmp_path):
    """Weights, calibration and held-out folders are named, never located: README.txt and manifest.json carry no
    folder of the machine that made the bundle (an absolute one, or one relative to where it ran)."""
    import torch
    from PIL import Image
    from skimage import data

    where = tmp_path / "home" / "someone" / "project"
    (where / "calib").mkdir(parents=True)
    (where / "heldout").mkdir()
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        Image.fromarray(getattr(data, name)()).save(where / "calib" / f"{name}.png")
        Image.fromarray(getattr(data, name)()[::-1]).save(where / "heldout" / f"{name}.png")
    (where / "calib" / "broken.png").write_bytes(b"not a png")  # its path is recorded among the skipped files
    torch.save({"state_dict": b0[1]}, where / "van_b0_mine.pth")
    r = make_bundle("b0", str(where / "van_b0_mine.pth"), precisions="fp32,int8", calib=str(where / "calib"),
                    images=str(where / "heldout"), img_size=64, output=tmp_path / "b.tar.gz")
    with tarfile.open(r.path) as t:
        readme = t.extractfile("README.txt").read().decode()
        manifest = t.extractfile("manifest.json").read().decode()
    assert "Weights: van_b0_mine.pth" in readme
    for text in (readme, manifest):
        assert str(tmp_path) not in text and "home/someone" not in text
    m = read_bundle(r.path)
    int8 = next(e for e in m["models"] if e["precision"] == "int8")
    assert int8["made_by"]["calibration"]["source"] == "calib"
    assert int8["made_by"]["calibration"]["skipped_files"] == ["calib/broken.png"]
    assert int8["validation"]["groups"][0]["group"] == "4 images from heldout"
    assert m["model"]["weights"]["source"] == "van_b0_mine.pth"
    # a bundle of an FP32 file exported elsewhere: the checkpoint path recorded in that file stays behind too
    from vanexport.export.onnx import export_onnx

    exported = export_onnx("b0", str(where / "van_b0_mine.pth"), img_size=64, output=where / "m.onnx", validate=False)
    assert str(where) in json.dumps(exported.weights)
    r = make_bundle(model=where / "m.onnx", output=tmp_path / "c.tar.gz", validate=False)
    manifest = json.dumps(read_bundle(r.path))
    assert "van_b0_mine.pth" in manifest and str(tmp_path) not in manifest
