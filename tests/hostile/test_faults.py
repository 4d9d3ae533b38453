"""Faults of the machine and of the run: a full disk, a file size limit, signals, a killed run's leftovers, disk
space at unpacking, our own bugs. The user sees one line; nothing half-written stays."""
import errno
import os
import resource
import signal
import subprocess
import sys
import time

import pytest

from .conftest import assert_refused, run_cli, run_subprocess, tree


def test_file_size_limit_is_one_line_and_leaves_nothing(case):
    """A real EFBIG: the process may not write files over 1 MB (the ONNX file is 16 MB)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))

    o = run_subprocess(["onnx", "--img-size", "64", "-o", "out/m.onnx"], case, preexec=limit)
    assert_refused(o, "file too large", out=case / "out")


def test_disk_full_is_one_line_and_leaves_nothing(case, monkeypatch):
    import onnx

    def full(proto, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"the first bytes")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(onnx, "save", full)
    o = run_cli(["onnx", "--img-size", "64", "-o", "out/m.onnx"], case)
    assert_refused(o, "no space left on device", out=case / "out")


def test_not_enough_space_to_unpack(case, b0_bundle, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    o = run_cli(["unpack", b0_bundle[0], "-o", "out/u"], case)
    assert_refused(o, "has only 0.0 MB free", out=case / "out")


# `vanexport onnx` whose validation waits to be interrupted (a real one at 64x64 lasts about a second: on a loaded
# machine the signal could come after the file was committed). SIGINT is set back to Python's handler, as in a
# terminal: a suite started in the background (`make test &`, some CI runners) ignores SIGINT, and children inherit it.
_HELD_IN_VALIDATION = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
import vanexport.check.compare as compare

def hold(*args, **kwargs):
    sys.stderr.write("validating against PyTorch (held for the test)\\n")
    sys.stderr.flush()
    time.sleep(120)

compare.compare = hold
from vanexport.cli import main
sys.argv = ["vanexport", "onnx", "--img-size", "64", "-o", "out/m.onnx"]
main()
"""


def _interrupt_during_validation(case, sig) -> subprocess.CompletedProcess:
    """Start an export, wait until its temp file exists (validation runs on it), then send `sig`."""
    p = subprocess.Popen([sys.executable, "-c", _HELD_IN_VALIDATION], cwd=case,
                         stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in p.stderr:
        lines.append(line)
        if "validating against PyTorch" in line:
            break
    deadline = time.monotonic() + 30
    while not any(n.startswith(".vanexport-") for n in os.listdir(case / "out")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(n.startswith(".vanexport-") for n in os.listdir(case / "out")), "the temp file never appeared"
    p.send_signal(sig)
    rest = p.stderr.read()
    p.wait(timeout=60)
    return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.read(), "".join(lines) + rest)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_signals_clean_up(case, sig, code, word):
    r = _interrupt_during_validation(case, sig)
    assert r.returncode == code, r.stderr
    assert f"{word} (no partial files were left)" in r.stderr and "Traceback" not in r.stderr
    assert tree(case / "out") == set()


def test_a_killed_runs_temp_files_are_removed_by_the_next_run(case):
    out = case / "out"
    dead = out / ".vanexport-999999999-0123abcd.tmp"  # no such process
    live = out / f".vanexport-{os.getpid()}-0123abcd.tmp"  # a running process's: kept
    other = out / ".someone-elses.tmp"
    for f in (dead, live, other):
        f.write_bytes(b"x" * 1000)
        os.utime(f, (time.time() - 3600, time.time() - 3600))
    o = run_cli(["onnx", "--img-size", "64", "--no-validate", "-o", "out/m.onnx"], case)
    assert o.code == 0, o.stderr
    assert tree(out) == {"m.onnx", live.name, other.name}


def test_our_own_bug_is_one_internal_error_line_exit_1(case, monkeypatch):
    from vanexport.export import onnx as export

    def bug(*a, **k):
        raise ZeroDivisionError("a bug of ours")

    monkeypatch.setattr(export, "_torch_export", bug)
    o = run_cli(["onnx", "--img-size", "64", "-o", "out/m.onnx"], case)
    assert_refused(o, "ZeroDivisionError: a bug of ours (rerun with --debug for the traceback)", code=1,
                   out=case / "out", prefix="internal error: ")
    with pytest.raises(AssertionError, match="raised ZeroDivisionError"):  # --debug: the traceback, not a line
        run_cli(["onnx", "--img-size", "64", "-o", "out/m.onnx", "--debug"], case)
    assert tree(case / "out") == set()


def test_out_of_memory_is_one_line(case, monkeypatch):
    from vanexport.export import onnx as export

    def oom(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:116] DefaultCPUAllocator: not enough memory")

    monkeypatch.setattr(export, "_torch_export", oom)
    o = run_cli(["onnx", "--img-size", "64", "-o", "out/m.onnx"], case)
    assert_refused(o, "out of memory", out=case / "out")


@pytest.mark.slow
def test_concurrent_exports_to_one_path_stay_valid(case):
    import onnx

    procs = [subprocess.Popen([sys.executable, "-m", "vanexport", "onnx", "--img-size", "64", "--no-validate",
                               "-o", "out/m.onnx"], cwd=case, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    onnx.checker.check_model(onnx.load(str(case / "out" / "m.onnx")))
    assert tree(case / "out") == {"m.onnx"}
