"""Unpacking refuses every crafted archive below with one line, and extracts nothing."""
import gzip
import hashlib
import io
import json
import tarfile

import pytest

from vanexport.errors import VanexportError
from vanexport.device.archive import extract_verified, read_bundle
from vanexport.formats.bundle_manifest import FORMAT, SCHEMA_VERSION


def _manifest(files: dict[str, bytes], **over) -> bytes:
    m = {"format": FORMAT, "schema_version": SCHEMA_VERSION,
         "files": {n: {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for n, b in files.items()}}
    m.update(over)
    return json.dumps(m).encode()


def _tar(path, members):
    """members: (name, bytes) for files, or a ready TarInfo for links and special files."""
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    return path


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


GOOD = {"onnx/model.onnx": b"not really onnx, but bytes with a hash", "labels.txt": b"a\nb\n"}


def _good_members(files=GOOD, **over):
    return [("manifest.json", _manifest(files, **over))] + list(files.items())


def _special(name, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


CASES = {
    "absolute path": (_good_members() + [("/tmp/vanexport_evil", b"x")], "absolute path"),
    "dot-dot": (_good_members() + [("onnx/../../evil", b"x")], "climbs out of the bundle folder"),
    "symlink outside (absolute)": (_good_members() + [_link("onnx/passwd", "/etc/passwd")], "link pointing outside"),
    "symlink outside (relative)": (_good_members() + [_link("onnx/up", "../../etc")], "link pointing outside"),
    "hard link outside": (_good_members() + [_link("evil", "../outside", tarfile.LNKTYPE)], "link pointing outside"),
    "symlink inside": (_good_members() + [_link("alias.onnx", "onnx/model.onnx")], "bundles hold only regular files"),
    "device file": (_good_members() + [_special("dev", tarfile.CHRTYPE)], "not a regular file"),
    "fifo": (_good_members() + [_special("pipe", tarfile.FIFOTYPE)], "not a regular file"),
    "sha256 mismatch": ([("manifest.json", _manifest(GOOD)), ("onnx/model.onnx", GOOD["onnx/model.onnx"].upper()),
                         ("labels.txt", GOOD["labels.txt"])], "does not match its sha256"),
    "unlisted file": (_good_members() + [("extra.bin", b"x")], "not listed in manifest.json"),
    "missing file": ([("manifest.json", _manifest(GOOD)), ("labels.txt", GOOD["labels.txt"])], "missing from the archive"),
    "duplicate member": (_good_members() + [("labels.txt", b"other")], "appears twice"),
    "no manifest": (list(GOOD.items()), "no manifest.json"),
    "not a vanexport manifest": ([("manifest.json", b'{"hello": 1}')] + list(GOOD.items()), "not a vanexport bundle manifest"),
    "newer schema": (_good_members(schema_version=SCHEMA_VERSION + 1), f"uses bundle schema {SCHEMA_VERSION + 1}"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_crafted_archive_is_refused_and_nothing_extracted(tmp_path, case):
    members, message = CASES[case]
    archive = _tar(tmp_path / "evil.tar.gz", members)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(VanexportError) as e:
        extract_verified(archive, work / "out")
    assert message in str(e.value)
    assert "\n" not in str(e.value)  # one line
    assert list(work.iterdir()) == []  # nothing extracted, not even a temp folder
    assert not (tmp_path.parent / "vanexport_evil").exists() and not (tmp_path / "outside").exists()


def test_the_same_archive_without_the_evil_member_unpacks(tmp_path):
    """Control for the cases above: the refusals come from the evil member, not from the test's archive format."""
    archive = _tar(tmp_path / "good.tar.gz", _good_members())
    manifest = extract_verified(archive, tmp_path / "out")
    assert manifest["format"] == FORMAT
    assert (tmp_path / "out" / "onnx" / "model.onnx").read_bytes() == GOOD["onnx/model.onnx"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["labels.txt", "manifest.json", "onnx"]


def test_newer_schema_says_to_upgrade(tmp_path):
    archive = _tar(tmp_path / "new.tar.gz", _good_members(schema_version=SCHEMA_VERSION + 1, created_by={"vanexport": "9.0"}))
    with pytest.raises(VanexportError) as e:
        read_bundle(archive)
    assert "made by vanexport 9.0" in str(e.value) and "upgrade vanexport" in e.value.hint


@pytest.mark.parametrize("content", [b"", b"plain text, not gzip", gzip.compress(b"gzip but not tar" * 10)])
def test_not_a_tarball(tmp_path, content):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(content)
    with pytest.raises(VanexportError) as e:
        extract_verified(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert "\n" not in str(e.value)


def test_truncated_bundle_is_refused(tmp_path, b0_bundle):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(b0_bundle[0].read_bytes()[:2_000_000])
    with pytest.raises(VanexportError):
        extract_verified(cut, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unpack_cli_one_line_exit_2(tmp_path):
    from click.testing import CliRunner

    from vanexport.cli import cli

    archive = _tar(tmp_path / "evil.tar.gz", CASES["dot-dot"][0])
    r = CliRunner().invoke(cli, ["unpack", str(archive), "-o", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: refusing bundle")
    assert not (tmp_path / "out").exists()


def test_unpack_refuses_an_existing_folder(tmp_path, b0_bundle):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(VanexportError, match="already exists"):
        extract_verified(b0_bundle[0], tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
