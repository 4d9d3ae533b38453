"""The cache and output folders under concurrency, with real processes: several `predict`s of one bundle at once
on an empty or stale cache, several `unpack`s into one folder, and the work folder of a run killed outright."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vanexport.device.archive import verify_tree

from .conftest import tree

@pytest.fixture
def photo(case):
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).save(case / "photo.png")
    return case / "photo.png"


def _at_once(args_list, cwd) -> list[subprocess.CompletedProcess]:
    """Start every `vanexport ARGS` before waiting for any."""
    procs = [subprocess.Popen([sys.executable, "-m", "vanexport", *map(str, args)], cwd=cwd, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for args in args_list]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


# One backend for every process: the unpacking is what is under test, and the CPU way that predict would time
# fastest can differ between processes racing for two cores (and with it the last bits of the probabilities).
PREDICT = ["predict", "--json", "--backend", "onnxruntime-cpu"]


def _predictions(runs) -> list:
    for r in runs:
        assert r.returncode == 0 and "error" not in r.stderr, r.stderr
    return [json.loads(r.stdout)["predictions"] for r in runs]


def _cached_copy(case) -> Path:
    (folder,) = [p for p in (case / "cache" / "bundles").iterdir() if not p.name.startswith(".")]
    return folder


def _assert_intact(folder: Path):
    manifest = json.loads((folder / "manifest.json").read_text())
    assert verify_tree(folder, manifest) == []
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".vanexport-")]  # no temp left


@pytest.mark.slow  # four interpreters at once
def test_four_predicts_at_once_on_an_empty_cache_agree(b0_bundle, case, photo):
    runs = _at_once([PREDICT + [photo, "--model", b0_bundle[0]]] * 4, case)
    answers = _predictions(runs)
    assert all(a == answers[0] for a in answers) and answers[0][0]["top"]
    _assert_intact(_cached_copy(case))


@pytest.mark.slow  # four interpreters at once
def test_four_predicts_at_once_on_a_stale_cache_agree(b0_bundle, case, photo):
    """A copy cut short (a file missing, another truncated) is unpacked again once, and reused by the others."""
    (first,) = _predictions(_at_once([PREDICT + [photo, "--model", b0_bundle[0]]], case))
    cached = _cached_copy(case)
    (cached / "labels.txt").unlink()
    onnx_file = next(cached.rglob("*.onnx"))
    onnx_file.write_bytes(onnx_file.read_bytes()[:1000])
    answers = _predictions(_at_once([PREDICT + [photo, "--model", b0_bundle[0]]] * 4, case))
    assert all(a == first for a in answers)
    _assert_intact(cached)


@pytest.mark.slow  # four interpreters at once
def test_four_unpacks_into_one_folder_one_wins_the_others_say_one_line(b0_bundle, case):
    runs = _at_once([["unpack", b0_bundle[0], "-o", "out/u"]] * 4, case)
    won = [r for r in runs if r.returncode == 0]
    lost = [r for r in runs if r.returncode != 0]
    assert len(won) == 1, [r.stderr for r in runs]
    for r in lost:
        errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(errors) == 1, r.stderr
        assert "'out/u' already exists and is not an empty folder" in errors[0]
    manifest = json.loads((case / "out" / "u" / "manifest.json").read_text())
    assert verify_tree(case / "out" / "u", manifest) == []
    assert {p for p in tree(case / "out") if "/" not in p} == {"u"}  # no temp folder of a loser left beside it


# ---- work folders of killed runs -----------------------------------------------------------------------------

_HOLD_A_WORK_FOLDER = """
import sys, time
from vanexport.files import work_folder
with work_folder() as folder:
    (folder / "half.onnx").write_bytes(b"x" * 1000)
    print(folder, flush=True)
    time.sleep(600)
"""


def _start_ticks(pid: int) -> int:
    """Field 22 of /proc/PID/stat (proc(5)): when the process started, in clock ticks after boot."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text.rsplit(")", 1)[1].split()[19])


@pytest.mark.skipif(not Path("/proc/self/ns/pid").exists(), reason="needs /proc (Linux)")
def test_the_work_folder_of_a_run_killed_outright_is_reclaimed_by_the_next_run(b0_onnx_64, case,
                                                                                private_system_temp):
    killed = subprocess.Popen([sys.executable, "-c", _HOLD_A_WORK_FOLDER], stdout=subprocess.PIPE, text=True)
    folder = Path(killed.stdout.readline().strip())
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert folder.is_dir() and folder.parent == private_system_temp
    # a folder named for a pid that is alive (ours) but that started at another time: the pid was reused
    ns = os.stat("/proc/self/ns/pid").st_ino
    reused = private_system_temp / f"vanexport-{os.getpid()}-{_start_ticks(os.getpid()) + 1}-{ns}-0123abcd"
    ours = private_system_temp / f"vanexport-{os.getpid()}-{_start_ticks(os.getpid())}-{ns}-0123abcd"
    # another pid namespace (a container sharing the folder), where a live process looks dead: kept for 24 h
    foreign = private_system_temp / f"vanexport-999999999-1-{ns + 1}-0123abcd"
    for f in (reused, ours, foreign):
        f.mkdir()
    r = subprocess.run([sys.executable, "-m", "vanexport", "bundle", "--model", b0_onnx_64, "--no-validate",
                        "-o", "out/b.tar.gz"], cwd=case, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert {p.name for p in private_system_temp.glob("vanexport-*")} == {ours.name, foreign.name}
