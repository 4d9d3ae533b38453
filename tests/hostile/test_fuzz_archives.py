"""Property-based fuzzing of bundle archives (hypothesis): random member names, types, sizes and link targets, and
random manifests naming random paths. Whatever comes in, unpacking and opening a bundle never write outside
their folder, never raise anything but the one-line error, and never hand a runtime a file that is not a listed,
hashed member. Half the examples are valid bundles whose names and hashes are drawn from what was written, with a
real (tiny) ONNX model: each of those must open and classify an image; the share of examples that open is
measured over a deterministic run (derandomize) and must stay above a floor, so the property is never vacuous."""
import collections
import hashlib
import io
import json
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from vanexport.errors import VanexportError
from vanexport.formats.bundle_manifest import FORMAT, SCHEMA_VERSION
from vanexport.model.variants import Preprocessing

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


# The valid bundles' model: logits = mean over H and W of each channel, times W, plus B (ONNX GlobalAveragePool,
# Flatten, Gemm), so what predict computes can be checked with numpy.
W = np.random.default_rng(0).normal(size=(3, 10)).astype(np.float32)
B = np.linspace(-1, 1, 10, dtype=np.float32)


PREPROCESSING = Preprocessing(64).to_dict()


def _tiny_onnx() -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from vanexport.formats.onnx_metadata import ModelMetadata, write_metadata

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["f"]),
         helper.make_node("Gemm", ["f", "W", "B"], ["logits"])], "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    # what vanexport writes into every file it exports, which opening a bundle compares with the manifest
    write_metadata(model, ModelMetadata("b0", 10, "input", "logits", ["batch", 3, 64, 64], {}, PREPROCESSING, "", "",
                                        "random", 17, "test"))
    onnx.checker.check_model(model)
    return model.SerializeToString()


TINY_ONNX = _tiny_onnx()


def _manifest(listed: dict, labels: str, model: str, model_sha: str, check: str, timing_cache, schema=SCHEMA_VERSION):
    return {"format": FORMAT, "schema_version": schema, "files": listed,
            "model": {"variant": "b0", "num_classes": 10, "weights": {}},
            "preprocessing": PREPROCESSING,
            "io": {"input": {"name": "input", "dtype": "float32", "shape": ["batch", 3, 64, 64]},
                   "output": {"name": "logits", "dtype": "float32", "shape": ["batch", 10]}},
            "labels": {"file": labels, "count": 10, "source": "fuzz"},
            "models": [{"file": model, "precision": "fp32", "sha256": model_sha}],
            "engines": [], "check": {"file": check}, "timing_cache": timing_cache}


def _no_file_is_a_folder_of_another(names) -> bool:
    return not any(b.startswith(a + "/") for a in names for b in names)


label_text = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=8)


@st.composite
def valid_bundles(draw):
    """A bundle that must open: every member written is listed with its own hash and size, and the model, labels,
    check and timing-cache paths are drawn from the members written."""
    names = draw(st.lists(benign_path, min_size=3, max_size=6, unique=True).filter(_no_file_is_a_folder_of_another))
    model, labels, check, *rest = names
    data = {n: draw(st.binary(max_size=64)) for n in names}
    data[model] = TINY_ONNX
    data[labels] = ("\n".join(draw(st.lists(label_text, min_size=10, max_size=10))) + "\n").encode()
    listed = {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in data.items()}
    members = [(n, "file", data[n], "") for n in draw(st.permutations(names))]
    timing_cache = draw(st.none() | st.sampled_from(rest)) if rest else None
    return members, _manifest(listed, labels, model, listed[model]["sha256"], check, timing_cache)


@st.composite
def hostile_bundles(draw):
    members = draw(st.lists(member_strategy(path_strategy), max_size=6))
    listed = {}
    for name, kind, data, _ in members:
        if draw(st.integers(0, 5)):
            right = draw(st.integers(0, 4))
            listed[name] = {"sha256": hashlib.sha256(data).hexdigest() if right else "0" * 64,
                            "size": len(data) if right else draw(st.integers(-1, 100))}
    for extra in draw(st.lists(path_strategy, max_size=2)):
        listed[extra] = {"sha256": "1" * 64, "size": 3}
    names = [m[0] for m in members] + list(listed)
    pick = st.sampled_from(names) if names else path_strategy
    manifest = _manifest(listed, draw(pick | path_strategy), draw(pick | path_strategy),
                         draw(st.sampled_from(["2" * 64] + [v["sha256"] for v in listed.values()])),
                         draw(pick | path_strategy), draw(st.none() | pick),
                         draw(st.sampled_from([SCHEMA_VERSION] * 6 + [0, 2])))
    return members, manifest


TAMPERINGS = ["wrong hash", "wrong size", "unlisted member", "missing member", "labels path out", "symlink"]


@st.composite
def tampered_bundles(draw):
    """A valid bundle with one thing wrong that must be refused (a near miss, where the checks matter most)."""
    members, manifest = draw(valid_bundles())
    how = draw(st.sampled_from(TAMPERINGS))
    victim = draw(st.sampled_from(sorted(manifest["files"])))
    files = manifest["files"]
    if how == "wrong hash":
        files[victim]["sha256"] = hashlib.sha256(b"something else").hexdigest()
    elif how == "wrong size":
        files[victim]["size"] += draw(st.integers(1, 10))
    elif how == "unlisted member":
        members.append(("unlisted.bin", "file", b"not in the manifest", ""))
    elif how == "missing member":
        members[:] = [m for m in members if m[0] != victim]
    elif how == "labels path out":
        manifest["labels"]["file"] = "../" + manifest["labels"]["file"]
    else:
        members[:] = [m if m[0] != victim else (victim, "symlink", b"", "/etc/passwd") for m in members]
    return members, manifest


# Half valid (they must open), a quarter tampered (they must be refused), a quarter hostile (anything may happen,
# within the property): each kind its own run of a fixed number of examples, so the shares are fixed too.
EXAMPLES = {"valid": (valid_bundles, 50), "tampered": (tampered_bundles, 25), "hostile": (hostile_bundles, 25)}


def _everything(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


MIN_SHARE_OPENED = 0.4  # of all examples: half are valid, and every valid one must open


def test_unpacking_and_opening_never_escape():
    """The property, over a deterministic run of 100 examples (derandomize: the same examples on every run of a
    given hypothesis release, so the share below is a fixed number, not a flaky one; `pytest -s` prints it)."""
    seen = collections.Counter()

    for kind, (strategy, count) in EXAMPLES.items():
        @settings(max_examples=count, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(strategy())
        def run(bundle):
            members, manifest = bundle
            seen[kind] += 1
            opened = _check_one(members, manifest, must_open=kind == "valid")
            assert not (kind == "tampered" and opened), "a tampered bundle opened"
            seen[f"{kind} opened"] += opened
            event(f"{kind}: {'opened' if opened else 'refused'}")

        run()
    kinds = ("valid", "tampered", "hostile")
    total, opened = sum(seen[k] for k in kinds), sum(seen[f"{k} opened"] for k in kinds)
    print(f"fuzz: {opened} of {total} examples opened ("
          + ", ".join(f"{seen[k + ' opened']} of {seen[k]} {k}" for k in kinds) + ")")
    assert seen["valid opened"] == seen["valid"] > 0 and seen["tampered"] > 0
    assert opened / total >= MIN_SHARE_OPENED


def _check_one(members, manifest, must_open: bool) -> bool:
    """Unpack and open one archive; the property holds whatever happens. A valid one must open and classify an
    image with the bundle's model and labels. Returns whether it opened."""
    from vanexport.device import bundle as device_bundle
    from vanexport.device.archive import extract_verified

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
            assert not must_open, "a valid bundle was refused"
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
            assert not must_open, "a valid bundle was refused"
            assert not (root / "sandbox" / "opened").exists()
            return False
        for path in b.manifest.referenced_paths():
            assert path in b.manifest.files
            resolved = (b.root / path).resolve()
            assert resolved.is_relative_to(b.root.resolve()) and resolved.is_file()
        if must_open:
            _predict(archive, b.labels, manifest)
        return True


def _predict(archive: Path, labels: list[str], manifest: dict) -> None:
    """What `vanexport predict` does with the archive: the bundle's model, with its labels (numpy reference)."""
    from vanexport.data.preprocess import preprocess_image
    from vanexport.device.classify import load_classifier, softmax

    expected_labels = (archive.parent / "unpacked" / manifest["labels"]["file"]).read_text().split("\n")[:10]
    assert labels == expected_labels
    image = np.random.default_rng(len(labels[0])).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    clf = load_classifier(archive, backend="onnxruntime-cpu")
    x = preprocess_image(image, clf.preprocessing)[None]
    logits = x.mean(axis=(2, 3)) @ W + B
    np.testing.assert_allclose(clf.logits(x), logits, rtol=1e-4, atol=1e-5)
    (top,) = clf.classify([image], topk=3)
    best = np.argsort(-softmax(logits)[0], kind="stable")[:3]
    assert [(t["index"], t["label"]) for t in top] == [(int(i), labels[i]) for i in best]


@settings(max_examples=5, deadline=None, derandomize=True, database=None)
@given(valid_bundles())
def test_the_fuzzers_valid_bundles_open_and_a_path_out_is_refused(bundle):
    """A control, with the strategy's own bundles: each opens; the same bundle with its labels path pointing out of
    the folder is refused."""
    from vanexport.device.bundle import open_bundle

    members, manifest = bundle
    with tempfile.TemporaryDirectory() as tmp:
        b = open_bundle(_tar(Path(tmp) / "b.tar.gz", members, manifest), Path(tmp) / "o")
        assert len(b.labels) == 10
        manifest["labels"]["file"] = "../" + manifest["labels"]["file"]
        with pytest.raises(VanexportError, match="climbs out"):
            open_bundle(_tar(Path(tmp) / "c.tar.gz", members, manifest), Path(tmp) / "p")
