"""Hostile bundles: archives that try to escape, lie about themselves, or expand without end, and manifests whose
paths point outside the bundle. Each one through every command that reads bundles."""
import tarfile

import pytest

from .conftest import assert_refused, craft, entry, run_cli, write_tar

COMMANDS = {
    "unpack": lambda b: ["unpack", b, "-o", "out/unpacked"],
    "predict": lambda b: ["predict", "photo.png", "--model", b],
    "triton": lambda b: ["triton", b, "-o", "out/repo"],
    "deepstream": lambda b: ["deepstream", b, "-o", "out/config_infer.txt"],
}


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _special(name, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


def _set(path, value):
    """A manifest mutation: set the value at a dotted path (list indices as numbers)."""
    def mutate(m):
        *parents, last = path.split(".")
        node = m
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[int(last) if last.isdigit() else last] = value
    return mutate


def _fake_engine(m):
    """An engine entry whose plan and manifest are listed members (a valid starting point to break)."""
    m["engines"] = [{"file": "engines/x.plan", "manifest": "engines/x.manifest.json", "sha256": m["files"]["engines/x.plan"]["sha256"],
                     "source": m["models"][0]["file"], "precision": "fp32"}]


# name -> (how to make it from the good bundle, message)
ARCHIVE_CASES = {
    "absolute member": (dict(extra_members=[("/tmp/vanexport_evil", b"x")]), "absolute path"),
    "dot-dot member": (dict(extra_members=[("onnx/../../evil", b"x")]), "climbs out of the bundle folder"),
    "symlink out (absolute)": (dict(extra_members=[_link("onnx/passwd", "/etc/passwd")]), "link pointing outside"),
    "symlink out (relative)": (dict(extra_members=[_link("onnx/up", "../../etc")]), "link pointing outside"),
    "hard link out": (dict(extra_members=[_link("evil", "../outside", tarfile.LNKTYPE)]), "link pointing outside"),
    "symlink inside": (dict(extra_members=[_link("alias.onnx", "labels.txt")]), "bundles hold only regular files"),
    "device": (dict(extra_members=[_special("dev", tarfile.CHRTYPE)]), "not a regular file"),
    "fifo": (dict(extra_members=[_special("pipe", tarfile.FIFOTYPE)]), "not a regular file"),
    "unlisted member": (dict(extra_members=[("extra.bin", b"x")]), "not listed in manifest.json"),
    "duplicate member": (dict(extra_members=[("labels.txt", b"other")]), "appears twice"),
    "file and a member inside it": (dict(files={"x": b"a file"}, extra_members=[("x/y", b"inside it")]),
                                    "lies inside 'x', which is a file"),
    "missing member": (dict(files={"labels.txt": None}, relist=False, stub_models=False), "missing from the archive"),
    "size differs from the list": (dict(mutate=lambda m: m["files"]["labels.txt"].update(size=1)),
                                   "lists 1"),
    "tampered content": (dict(mutate=lambda m: m["files"]["labels.txt"].update(sha256="0" * 64)),
                         "does not match its sha256"),
    "listed file outside": (dict(mutate=lambda m: m["files"].update({"../escape.txt": entry(b"x")})),
                            "climbs out of the bundle folder"),
    "manifest lists itself": (dict(mutate=lambda m: m["files"].update({"manifest.json": entry(b"x")})),
                              "lists itself"),
    "bad digest in the list": (dict(mutate=lambda m: m["files"]["labels.txt"].update(sha256="xyz")),
                               "not a sha256 digest"),
    "negative size": (dict(mutate=lambda m: m["files"]["labels.txt"].update(size=-5)), "no valid size"),
    "newer schema": (dict(mutate=_set("schema_version", 99)), "uses bundle schema 99"),
    "not a bundle manifest": (dict(mutate=_set("format", "something-else")), "not a vanexport bundle manifest"),
}

# Manifests that pass the archive checks but name paths outside the bundle or unhashed: refused before use.
MANIFEST_CASES = {
    "labels outside": (dict(mutate=_set("labels.file", "../../etc/passwd")), "climbs out of the bundle folder"),
    "labels absolute": (dict(mutate=_set("labels.file", "/etc/passwd")), "absolute path"),
    "labels unlisted": (dict(mutate=_set("labels.file", "labels2.txt")), "not a listed file of the bundle"),
    "model outside": (dict(mutate=_set("models.0.file", "../van.onnx")), "climbs out of the bundle folder"),
    "model absolute": (dict(mutate=_set("models.0.file", "/tmp/someone_elses.onnx")), "absolute path"),
    "model unlisted": (dict(mutate=_set("models.0.file", "onnx/other.onnx")), "not a listed file of the bundle"),
    "model hash disagrees": (dict(mutate=_set("models.0.sha256", "1" * 64)), "another sha256 than the file list"),
    "model precision unknown": (dict(mutate=_set("models.0.precision", "fp64")), "unknown precision"),
    "check data outside": (dict(mutate=_set("check.file", "../../check.npz")), "climbs out of the bundle folder"),
    "timing cache outside": (dict(mutate=_set("timing_cache", "/etc/shadow")), "absolute path"),
    "timing cache unlisted": (dict(mutate=_set("timing_cache", "timing.cache")), "not a listed file of the bundle"),
    "engine manifest elsewhere": (dict(files={"engines/x.plan": b"p", "engines/x.manifest.json": b"{}",
                                              "engines/y.manifest.json": b"{}"},
                                       mutate=lambda m: (_fake_engine(m), _set("engines.0.manifest",
                                                                               "engines/y.manifest.json")(m))),
                                  "not beside its plan"),
    "engine plan unlisted": (dict(files={"engines/x.plan": b"p", "engines/x.manifest.json": b"{}"},
                                  mutate=lambda m: (_fake_engine(m), _set("engines.0.file", "engines/z.plan")(m))),
                             "not a listed file of the bundle"),
    "engine source not bundled": (dict(files={"engines/x.plan": b"p", "engines/x.manifest.json": b"{}"},
                                       mutate=lambda m: (_fake_engine(m), _set("engines.0.source", "/bin/sh")(m))),
                                  "not one of the bundled ONNX files"),
    "no models": (dict(mutate=_set("models", [])), "at least its FP32 ONNX file"),
    "no class count": (dict(mutate=_set("model.num_classes", "many")), "not a positive integer"),
}


def _make(b0_bundle, case_dir, spec):
    return craft(b0_bundle[0], case_dir / "evil.tar.gz", **spec)


@pytest.fixture
def photo(case):
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).save(case / "photo.png")
    return case / "photo.png"


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("name", list(ARCHIVE_CASES))
def test_hostile_archives(b0_bundle, case, photo, name, command):
    spec, message = ARCHIVE_CASES[name]
    bundle = _make(b0_bundle, case, spec)
    o = run_cli(COMMANDS[command](bundle), case)
    assert_refused(o, message, out=case / "out")


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("name", list(MANIFEST_CASES))
def test_manifest_paths_never_leave_the_bundle(b0_bundle, case, photo, name, command):
    spec, message = MANIFEST_CASES[name]
    bundle = _make(b0_bundle, case, spec)
    o = run_cli(COMMANDS[command](bundle), case)
    assert_refused(o, message, out=case / "out")


def test_the_good_bundle_passes_every_command(b0_bundle, case, photo):
    """The control: the same commands on the untouched bundle succeed."""
    bundle = _make(b0_bundle, case, {"stub_models": False})
    for command, args in COMMANDS.items():
        o = run_cli(args(bundle), case)
        assert o.code == 0, (command, o.stderr)


def test_an_archive_that_expands_past_the_cap(b0_bundle, case):
    """The header that crosses the cap is refused before its data is decompressed."""
    bundle = craft(b0_bundle[0], case / "big.tar.gz", files={"zeros.bin": b"\0" * 3_000_000})
    o = run_cli(["unpack", bundle, "-o", "out/u"], case, env={"VANEXPORT_MAX_BUNDLE_GB": str(2e6 / 2**30)})
    assert_refused(o, "expands to more than", out=case / "out")


def test_a_cached_bundle_is_checked_against_its_archive(b0_bundle, case, photo):
    """Editing the unpacked copy in the cache (manifest and file together) does not make predict use it."""
    import json

    o = run_cli(["predict", "photo.png", "--model", b0_bundle[0], "--json"], case)
    assert o.code == 0, o.stderr
    cached = next((case / "cache" / "bundles").iterdir())
    labels = cached / "labels.txt"
    labels.write_text("\n".join(f"EVIL {i}" for i in range(1000)) + "\n")
    manifest = json.loads((cached / "manifest.json").read_text())
    manifest["files"]["labels.txt"] = entry(labels.read_bytes())
    (cached / "manifest.json").write_text(json.dumps(manifest))
    o = run_cli(["predict", "photo.png", "--model", b0_bundle[0], "--json"], case)
    assert o.code == 0 and "EVIL" not in o.stdout  # unpacked again from the archive


def test_truncated_and_non_archives(b0_bundle, case):
    (case / "cut.tar.gz").write_bytes(b0_bundle[0].read_bytes()[:5000])
    (case / "text.tar.gz").write_text("hello")
    (case / "empty.tar.gz").write_bytes(b"")
    for name, message in (("cut.tar.gz", "damaged"), ("text.tar.gz", "not a readable .tar.gz"),
                          ("empty.tar.gz", "not a readable .tar.gz")):
        o = run_cli(["unpack", name, "-o", "out/u"], case)
        assert_refused(o, message, out=case / "out")


def test_an_archive_without_a_manifest_and_a_folder_as_bundle(case):
    write_tar(case / "plain.tar.gz", [("a", b"x")])
    (case / "dir.tar.gz").mkdir()
    o = run_cli(["unpack", "plain.tar.gz", "-o", "out/u"], case)
    assert_refused(o, "no manifest.json", out=case / "out")
    o = run_cli(["unpack", "dir.tar.gz", "-o", "out/u"], case)
    assert_refused(o, "is a directory", out=case / "out")


def test_unpack_refuses_a_folder_that_holds_something(b0_bundle, case):
    (case / "out" / "u").mkdir()
    (case / "out" / "u" / "keep.txt").write_text("mine")
    o = run_cli(["unpack", b0_bundle[0], "-o", "out/u"], case)
    assert_refused(o, "already exists and is not an empty folder")
    assert [p.name for p in (case / "out" / "u").iterdir()] == ["keep.txt"]


def test_the_newer_schema_names_the_version_that_made_it(b0_bundle, case):
    bundle = _make(b0_bundle, case, dict(mutate=lambda m: (_set("schema_version", 2)(m),
                                                           _set("created_by", {"vanexport": "9.0"})(m))))
    o = run_cli(["unpack", bundle, "-o", "out/u"], case)
    assert_refused(o, "made by vanexport 9.0; this vanexport reads schema 1 at most", out=case / "out")
    assert "upgrade vanexport" in o.stderr
