"""Helpers of the hostile corpus: craft archives and files, run a command, and check what a user must always get.

Every case asserts: the exit code; exactly one `error:` line (no traceback); nothing left in the output folder
when it failed; nothing written anywhere else in the case's folder, in the cache or in the system temp folder.
"""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from vanexport.cli import cli


def tree(root: Path) -> set[str]:
    """Every path below `root` (files, folders, links), relative; the cache's folders (its layout, made before any
    work) do not count, what is in them does."""
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if not (p.is_dir() and not p.is_symlink() and p.relative_to(root).parts[0] == "cache")}


def ours_in_system_temp() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("vanexport-*")}


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    new_files: set[str] = field(default_factory=set)  # written outside the output folder


def run_cli(args, cwd: Path, env: dict | None = None) -> Outcome:
    """The CLI in-process (click's runner), with `cwd` as the working folder; what it wrote outside cwd/out."""
    before, temp_before = tree(cwd), ours_in_system_temp()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        r = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=True)
    finally:
        os.chdir(old)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"{args} raised {type(r.exception).__name__}: {r.exception}") from r.exception
    new = {p for p in tree(cwd) - before if not p.startswith("out")}
    new |= {f"$TMP/{n}" for n in ours_in_system_temp() - temp_before}
    return Outcome(r.exit_code, r.stdout, r.stderr, new)


def run_subprocess(args, cwd: Path, env: dict | None = None, timeout: float = 120, preexec=None) -> Outcome:
    """The CLI as a real process (for signals, resource limits and what could hang)."""
    before, temp_before = tree(cwd), ours_in_system_temp()
    full_env = {**os.environ, **(env or {})}
    p = subprocess.run([sys.executable, "-m", "vanexport", *map(str, args)], cwd=cwd, env=full_env, text=True,
                       capture_output=True, timeout=timeout, preexec_fn=preexec)
    new = {q for q in tree(cwd) - before if not q.startswith("out")}
    new |= {f"$TMP/{n}" for n in ours_in_system_temp() - temp_before}
    return Outcome(p.returncode, p.stdout, p.stderr, new)


def assert_refused(o: Outcome, message: str, code: int = 2, out: Path | None = None, prefix: str = "error: "):
    """One line, starting with `prefix` and holding `message`; the exit code; nothing left behind."""
    lines = [line for line in o.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(prefix)]
    assert "Traceback" not in o.stderr, o.stderr
    assert len(errors) == 1, f"expected one '{prefix}' line, got:\n{o.stderr}"
    assert message in errors[0], f"{message!r} not in {errors[0]!r}"
    assert o.code == code, f"exit {o.code}, expected {code}: {o.stderr}"
    assert not o.new_files, f"left behind: {sorted(o.new_files)}"
    if out is not None:
        assert tree(out) == set(), f"output folder not empty: {sorted(tree(out))}"


# ---- bundles -----------------------------------------------------------------------------------------------

def read_members(archive: Path) -> tuple[dict, dict[str, bytes]]:
    with tarfile.open(archive, "r:gz") as tar:
        data = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    return json.loads(data.pop("manifest.json")), data


def write_tar(path: Path, members) -> Path:
    """members: (name, bytes) for files, or a ready TarInfo (links, folders, special files)."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    return path


def entry(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def craft(base: Path, out: Path, mutate=None, files=None, relist: bool = True, extra_members=(),
          stub_models: bool = True) -> Path:
    """A copy of the bundle `base` with its manifest changed by `mutate(manifest)`, its files replaced or added
    (`files`: name -> bytes, None to drop), re-listed with correct hashes unless `relist` is False. With
    `stub_models` the (16 MB) ONNX files become a few bytes, so a case costs milliseconds: every refusal here
    happens before a model is read."""
    manifest, data = read_members(base)
    if stub_models:
        for m in manifest["models"]:
            data[m["file"]] = b"stub: a hostile case is refused before any model is read"
            m["sha256"] = entry(data[m["file"]])["sha256"]
    for name, content in (files or {}).items():
        if content is None:
            data.pop(name, None)
        else:
            data[name] = content
    if relist:
        manifest["files"] = {n: entry(b) for n, b in sorted(data.items())}
    if mutate:
        mutate(manifest)
    body = json.dumps(manifest).encode()
    return write_tar(out, [("manifest.json", body), *sorted(data.items()), *extra_members])


@pytest.fixture(autouse=True)
def private_system_temp(tmp_path_factory, monkeypatch):
    """A system temp folder of this test's own (TMPDIR, for its subprocesses too): what another test, or another
    pytest worker, writes to the shared one at the same moment is not this case's leftover."""
    folder = tmp_path_factory.mktemp("systemp")
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def case(tmp_path, monkeypatch):
    """A case folder with `out/` (the output folder) and an isolated cache."""
    (tmp_path / "out").mkdir()
    monkeypatch.setenv("VANEXPORT_CACHE", str(tmp_path / "cache"))
    return tmp_path
