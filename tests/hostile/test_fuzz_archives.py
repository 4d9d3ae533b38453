"""Property-based fuzzing of bundle archives (hypothesis): random member names, types, sizes and link targets, and
random manifests naming random paths. Whatever comes in, unpacking and opening a bundle never write outside
their folder, never raise anything but the one-line error, and never hand a runtime a file that is not a listed,
hashed member."""
import hashlib
import io
import json
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vanexport.errors import VanexportError
from vanexport.formats.bundle_manifest import FORMAT, SCHEMA_VERSION

BENIGN = ["a", "b", "onnx", "labels.txt", "m.onnx", "engines", "x.plan", "é"]
HOSTILE = ["..", ".", "", "manifest.json", "c\\d", "C:", "\x00z"]
benign_path = st.lists(st.sampled_from(BENIGN), min_size=1, max_size=3).map("/".join)
hostile_path = st.lists(st.sampled_from(BENIGN + HOSTILE), min_size=1, max_size=4).map("/".join) | \
    st.sampled_from(["/etc/passwd", "../../outside", "/tmp/x", "a/../../b"])
path_strategy = st.one_of(benign_path, benign_path, benign_path, hostile_path)  # mostly plausible, so some pass
KINDS = ["file"] * 8 + ["dir", "symlink", "hardlink", "fifo", "chrdev"]


def member_strategy(names):
    return st.tuples(names, st.sampled_from(KINDS), st.binary(max_size=64), path_strategy)


def _tar(path: Path, members, manifest: dict) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
        for name, kind, data, target in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE, "chrdev": tarfile.CHRTYPE}[kind]
            info.linkname = target
            tar.addfile(info)
    return path


@st.composite
def bundles(draw):
    hostile = draw(st.booleans())  # half the examples are plausible bundles, so that some pass every check
    if hostile:
        members = draw(st.lists(member_strategy(path_strategy), max_size=6))
    else:
        members = [(n, "file", d, "") for n, d in draw(st.dictionaries(benign_path, st.binary(max_size=64),
                                                                        max_size=5)).items()]
    listed = {}
    for name, kind, data, _ in members:
        if not hostile or draw(st.integers(0, 5)):
            right = not hostile or draw(st.integers(0, 4))
            listed[name] = {"sha256": hashlib.sha256(data).hexdigest() if right else "0" * 64,
                            "size": len(data) if right else draw(st.integers(-1, 100))}
    for extra in draw(st.lists(path_strategy, max_size=2)) if hostile else []:
        listed[extra] = {"sha256": "1" * 64, "size": 3}
    names = [m[0] for m in members] + list(listed)
    pick = st.sampled_from(names) if names else path_strategy
    manifest = {"format": FORMAT, "schema_version": draw(st.sampled_from([SCHEMA_VERSION] * 6 + [0, 2])),
                "files": listed, "model": {"variant": "b0", "num_classes": 10, "weights": {}},
                "preprocessing": {"input_size": 64, "crop_pct": 0.9, "interpolation": "bicubic",
                                  "mean": [0.5] * 3, "std": [0.5] * 3},
                "io": {"input": {"name": "input", "dtype": "float32", "shape": ["batch", 3, 64, 64]},
                       "output": {"name": "logits", "dtype": "float32", "shape": ["batch", 10]}},
                "labels": {"file": draw(pick | path_strategy), "count": 10, "source": "fuzz"},
                "models": [{"file": draw(pick | path_strategy), "precision": "fp32",
                            "sha256": draw(st.sampled_from(["2" * 64] + [v["sha256"] for v in listed.values()]))}],
                "engines": [], "check": {"file": draw(pick | path_strategy)},
                "timing_cache": draw(st.none() | pick)}
    return members, manifest


def _everything(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bundles())
def test_unpacking_and_opening_never_escape(bundle):
    from vanexport.device import bundle as device_bundle
    from vanexport.device.archive import extract_verified

    members, manifest = bundle
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "sandbox").mkdir()
        (root / "outside").mkdir()
        archive = _tar(root / "sandbox" / "b.tar.gz", members, manifest)
        dest = root / "sandbox" / "unpacked"
        try:
            extract_verified(archive, dest)
            ok = True
        except VanexportError:
            ok = False
        assert _everything(root / "outside") == set()
        inside = _everything(root / "sandbox")
        assert all(p == "b.tar.gz" or p == "unpacked" or p.startswith("unpacked/") for p in inside), inside
        if ok:
            files = {str(p.relative_to(dest)) for p in dest.rglob("*") if not p.is_dir()}
            assert all(not p.is_symlink() for p in dest.rglob("*"))
            assert files == set(manifest["files"]) | {"manifest.json"}
            for name in manifest["files"]:
                assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == manifest["files"][name]["sha256"]
        else:
            assert not dest.exists()

        # opening it (what predict, triton and deepstream do) either refuses, or yields only listed members
        try:
            b = device_bundle.open_bundle(archive, root / "sandbox" / "opened")
        except VanexportError:
            assert not (root / "sandbox" / "opened").exists()
            return
        for path in b.manifest.referenced_paths():
            assert path in b.manifest.files
            resolved = (b.root / path).resolve()
            assert resolved.is_relative_to(b.root.resolve()) and resolved.is_file()


def _tiny_onnx(num_classes: int) -> bytes:
    """A real ONNX file with vanexport metadata, NCHW 64x64 in, (batch, num_classes) out: what opening a bundle
    checks its manifest against (device/consistency.py), in a few hundred bytes."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from vanexport.formats.onnx_metadata import ModelMetadata, write_metadata
    from vanexport.model.variants import Preprocessing

    weight = numpy_helper.from_array(np.ones((3, num_classes), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("MatMul", ["f", "w"], ["logits"])], "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes])], [weight])
    model = helper.make_model(graph)
    write_metadata(model, ModelMetadata("b0", num_classes, "input", "logits", ["batch", 3, 64, 64], {},
                                        Preprocessing(64).to_dict(), "", "", "random", 17, "test"))
    return model.SerializeToString()


def test_the_fuzzer_reaches_success_and_refusal():
    """A control, so the property above is not vacuous: a well-formed fuzz-style bundle opens."""
    from vanexport.device.bundle import open_bundle
    from vanexport.model.variants import Preprocessing

    data = {"labels.txt": b"".join(b"%d\n" % i for i in range(10)), "m.onnx": _tiny_onnx(10),
            "check.npz": b"npz bytes"}
    listed = {k: {"sha256": hashlib.sha256(v).hexdigest(), "size": len(v)} for k, v in data.items()}
    manifest = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "files": listed,
                "model": {"variant": "b0", "num_classes": 10, "weights": {}},
                "preprocessing": Preprocessing(64).to_dict(),
                "io": {"input": {"name": "input", "dtype": "float32", "shape": ["batch", 3, 64, 64]},
                       "output": {"name": "logits", "dtype": "float32", "shape": ["batch", 10]}},
                "labels": {"file": "labels.txt", "count": 10, "source": "fuzz"},
                "models": [{"file": "m.onnx", "precision": "fp32", "sha256": listed["m.onnx"]["sha256"]}],
                "engines": [], "check": {"file": "check.npz"}, "timing_cache": None}
    with tempfile.TemporaryDirectory() as tmp:
        archive = _tar(Path(tmp) / "b.tar.gz", [(k, "file", v, "") for k, v in data.items()], manifest)
        b = open_bundle(archive, Path(tmp) / "o")
        assert b.labels == [str(i) for i in range(10)]
        manifest["labels"]["file"] = "../labels.txt"
        archive = _tar(Path(tmp) / "c.tar.gz", [(k, "file", v, "") for k, v in data.items()], manifest)
        with pytest.raises(VanexportError, match="climbs out"):
            open_bundle(archive, Path(tmp) / "p")
