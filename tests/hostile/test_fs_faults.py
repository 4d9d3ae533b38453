"""Faults of the file system and of the environment: a cache folder that cannot be ours, an output folder that
cannot be written, a file size limit while unpacking, size variables out of range, a calibration cache cut short,
and a Hub that cannot be reached. Each is one line, exit 2, nothing left behind."""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .conftest import assert_refused, run_cli, run_subprocess, tree

ROOT = os.geteuid() == 0
OTHER_USER = 12345  # a uid that is not ours


@pytest.fixture
def photo(case):
    from PIL import Image
    from skimage import data

    Image.fromarray(data.astronaut()).save(case / "photo.png")
    return case / "photo.png"


def _without_root_powers() -> list[str]:
    """A command prefix under which file permissions bite: nothing for a normal user; for root, setpriv without
    the capabilities that override them (util-linux)."""
    if not ROOT:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv: permissions do not bite")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def _run_without_root_powers(args, cwd, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*_without_root_powers(), sys.executable, "-m", "vanexport", *map(str, args)], cwd=cwd,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300)


def _one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in stderr and len(errors) == 1, stderr
    return errors[0]


# ---- the cache folder ---------------------------------------------------------------------------------------

def _a_file(case):
    (case / "afile").write_text("not a folder")
    return case / "afile"


def _a_link_of_another_user(case):
    (case / "elsewhere").mkdir()
    os.symlink(case / "elsewhere", case / "link")
    os.lchown(case / "link", OTHER_USER, OTHER_USER)
    return case / "link"


def _a_folder_of_another_user(case):
    (case / "theirs").mkdir()
    os.chown(case / "theirs", OTHER_USER, OTHER_USER)
    return case / "theirs"


CACHE_CASES = {
    "/dev/null": (lambda case: Path("/dev/null"), "cache folder '/dev/null' is not a folder (a device)"),
    "a file": (_a_file, "is not a folder"),
    "a path under a file": (lambda case: _a_file(case) / "cache", "cannot be used (Not a directory)"),
    "a link made by another user": (_a_link_of_another_user, "is a symbolic link made by another user"),
    "a folder of another user": (_a_folder_of_another_user, "belongs to another user"),
}


@pytest.mark.parametrize("name", list(CACHE_CASES))
def test_a_cache_folder_that_cannot_be_ours_is_one_line(b0_bundle, case, photo, name):
    make, message = CACHE_CASES[name]
    if name in ("a link made by another user", "a folder of another user") and not ROOT:
        pytest.skip("chown needs root")
    cache = make(case)
    o = run_cli(["predict", photo, "--model", b0_bundle[0]], case, env={"VANEXPORT_CACHE": str(cache)})
    assert_refused(o, message, out=case / "out")
    assert "set VANEXPORT_CACHE to a folder of your own" in o.stderr
    assert not (case / "elsewhere").exists() or tree(case / "elsewhere") == set()  # nothing went through the link


def test_a_link_the_user_made_is_followed(b0_bundle, case, photo):
    (case / "disk2").mkdir()
    os.symlink(case / "disk2", case / "cache_link")
    o = run_cli(["predict", photo, "--model", b0_bundle[0]], case, env={"VANEXPORT_CACHE": str(case / "cache_link")})
    assert o.code == 0, o.stderr
    assert any(p.name == "manifest.json" for p in (case / "disk2" / "bundles").rglob("*"))


def test_a_read_only_cache_folder_is_one_line(b0_bundle, case, photo):
    (case / "ro").mkdir(mode=0o500)
    r = _run_without_root_powers(["predict", photo, "--model", b0_bundle[0]], case,
                                 env={"VANEXPORT_CACHE": str(case / "ro")})
    assert "cache folder '" in _one_error_line(r.stderr) and "is not writable" in r.stderr and r.returncode == 2
    (case / "ro").chmod(0o700)
    assert tree(case / "ro") == set()


def test_a_file_size_limit_while_unpacking_into_the_cache_leaves_nothing(b0_bundle, case, photo):
    """A real EFBIG: the process may not write files over 1 MB (the bundle's ONNX file is 16 MB)."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))

    o = run_subprocess(["predict", photo, "--model", b0_bundle[0]], case, preexec=limit)
    assert_refused(o, "file too large", out=case / "out")
    assert tree(case / "cache") == {"bundles"}  # the empty layout: no half-unpacked copy, no temp folder


# ---- the output folder of unpack ----------------------------------------------------------------------------

def _unpack_case(case, name):
    if name == "a 300-character name":
        return "out/" + "x" * 300, "is longer than this file system allows"
    if name == "a path under a file":
        (case / "out" / "afile").write_text("x")
        return "out/afile/u", "folder 'out/afile' is not a folder"
    if name == "a symbolic link":
        (case / "target").mkdir()
        os.symlink(case / "target", case / "out" / "link")
        return "out/link", "is a symbolic link"
    raise KeyError(name)


@pytest.mark.parametrize("name", ["a 300-character name", "a path under a file", "a symbolic link"])
def test_unpack_into_a_folder_that_cannot_be_made_is_one_line(b0_bundle, case, name):
    dest, message = _unpack_case(case, name)
    before = tree(case / "out")
    o = run_cli(["unpack", b0_bundle[0], "-o", dest], case)
    assert_refused(o, message)
    assert tree(case / "out") == before  # no temp folder either
    assert not (case / "target").exists() or tree(case / "target") == set()  # nothing went through the link


def test_unpack_into_a_read_only_folder_is_one_line(b0_bundle, case):
    (case / "out" / "ro").mkdir(mode=0o500)
    r = _run_without_root_powers(["unpack", b0_bundle[0], "-o", "out/ro/u"], case)
    assert "folder 'out/ro' is not writable" in _one_error_line(r.stderr) and r.returncode == 2


# ---- environment variables ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "1e400", "-inf"])
def test_a_bundle_size_limit_out_of_range_is_one_line(b0_bundle, case, value):
    o = run_cli(["unpack", b0_bundle[0], "-o", "out/u"], case, env={"VANEXPORT_MAX_BUNDLE_GB": value})
    assert_refused(o, f"VANEXPORT_MAX_BUNDLE_GB='{value}' is ", out=case / "out")
    assert "a size in GB above 0 and at most 1048576" in o.stderr


def test_a_download_size_limit_out_of_range_is_one_line(case):
    (case / "w.pth").write_bytes(b"never read")
    o = run_cli(["onnx", "--weights", f"file://{case / 'w.pth'}", "--img-size", "64", "-o", "out/m.onnx"], case,
                env={"VANEXPORT_MAX_DOWNLOAD_GB": "1e400"})
    assert_refused(o, "VANEXPORT_MAX_DOWNLOAD_GB='1e400' is out of range", out=case / "out")
    assert "a size in GB above 0 and at most 1048576" in o.stderr


# ---- a calibration cache cut short --------------------------------------------------------------------------

@pytest.fixture
def calib(case):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (case / "calib").mkdir()
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(case / "calib" / f"{i}.png")
    return case / "calib"


def test_a_calibration_cache_cut_short_is_recalibrated(b0_onnx_64, case, calib):
    args = ["quantize", b0_onnx_64, "--calib", "calib", "--method", "max", "--no-validate", "-o", "out/m_int8.onnx"]
    first = run_cli(args, case)
    assert first.code == 0, first.stderr
    reference = (case / "out" / "m_int8.onnx").read_bytes()
    (cache,) = (case / "out").glob("*.calib-*.json")
    cache.write_bytes(cache.read_bytes()[:300])  # what a run killed while writing it leaves
    again = run_cli(args, case)
    assert again.code == 0, again.stderr
    assert [line for line in again.stderr.splitlines() if "calibration cache" in line] == [
        f"warning: the calibration cache {cache.name} was damaged (JSONDecodeError) and was removed: calibrating again"]
    assert (case / "out" / "m_int8.onnx").read_bytes() == reference  # the same ranges as the first calibration
    assert json.loads(cache.read_text())["data"]  # written whole again
    third = run_cli(args, case)
    assert third.code == 0 and "damaged" not in third.stderr and "reusing calibration ranges" in third.stderr


# ---- the Hugging Face Hub out of reach ----------------------------------------------------------------------

@pytest.fixture
def hanging_up():
    """A port on 127.0.0.1 that accepts connections and closes them at once (a dead proxy, a broken network);
    yields (endpoint, the connections counted)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    count = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            count.append(1)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", count
    finally:
        server.close()


def _closed_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def _official_weights(case, endpoint):
    return run_subprocess(["onnx", "--weights", "official", "--img-size", "64", "-o", "out/m.onnx"], case,
                          env={"HF_ENDPOINT": endpoint})


def test_official_weights_without_a_network_fail_at_the_first_attempt(case, hanging_up):
    endpoint, connections = hanging_up
    o = _official_weights(case, endpoint)
    assert_refused(o, f"{endpoint} cannot be reached", out=case / "out")
    assert [line for line in o.stderr.splitlines() if not line.startswith(("• ", "error: "))] == []  # no retries
    assert 1 <= len(connections) <= 2  # huggingface_hub alone tries 6 times


def test_official_weights_with_the_hub_on_a_closed_port_is_one_line(case):
    endpoint = _closed_port()
    o = _official_weights(case, endpoint)
    assert_refused(o, f"{endpoint} cannot be reached (", out=case / "out")
    assert [line for line in o.stderr.splitlines() if not line.startswith(("• ", "error: "))] == []
