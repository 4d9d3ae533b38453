"""Small file helpers: atomic writes, work folders, hashes, the cache folder, and reading only regular files, so no
command leaves a half-written file or hangs on a pipe.

Temporary files and folders are named `.vanexport-<pid>-<random>.tmp` (beside the output) and
`vanexport-<pid>-<random>` (work folders in the system's temp folder). A run killed outright (SIGKILL, power loss)
cannot clean up after itself, so the next run that writes into the same folder removes ours whose process is gone.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Iterator

from .errors import VanexportError

_TEMP = re.compile(r"^\.?vanexport-(\d+)-[0-9a-f]{8}(\.tmp)?$")
_STALE_AFTER_S = 10  # a fresh temp of a process that has just exited is not worth racing for
# The system temp folder may be shared with other PID namespaces (containers), where a live process looks dead.
_STALE_WORK_AFTER_S = 24 * 3600


def cache_dir() -> Path:
    """Where downloads and unpacked bundles are kept: $VANEXPORT_CACHE, else $XDG_CACHE_HOME/vanexport."""
    root = os.environ.get("VANEXPORT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "vanexport")
    return Path(root)


def gigabytes_from_env(name: str, default_gb: float) -> int:
    """A size limit in bytes from $name, given in GB (default `default_gb`); a value that is not a number is one line."""
    try:
        return int(float(os.environ.get(name, default_gb)) * 2**30)
    except ValueError:
        raise VanexportError(f"{name}={os.environ[name]!r} is not a number",
                             f"set it to a size in GB, e.g. {default_gb:g}") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def regular_file(path: str | os.PathLike, what: str, hint: str) -> Path:
    """`path` if it is an existing regular file (not a folder, pipe, socket or device: reading those hangs or
    misleads), else a one-line VanexportError naming `what` it should have been."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise VanexportError(f"{what} '{path}' not found", hint) from None
    except OSError as e:
        raise VanexportError(f"{what} '{path}' cannot be read ({e.strerror})", hint) from None
    if stat.S_ISDIR(mode):
        raise VanexportError(f"{what} '{path}' is a folder", hint)
    if not stat.S_ISREG(mode):
        raise VanexportError(f"{what} '{path}' is not a regular file (a pipe, socket or device)", hint)
    return path


def name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early (before any slow work) when `path` cannot be written."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        raise VanexportError(f"output folder '{folder}' does not exist", "create it first or choose another -o path")
    if len(os.fsencode(path.name)) > name_max(folder):  # before anything stats the path (ENAMETOOLONG)
        raise VanexportError(f"output file name '{path.name[:40]}...' is longer than this file system allows "
                             f"({name_max(folder)} bytes)", "choose a shorter -o name")
    if path.is_dir():
        raise VanexportError(f"output path '{path}' is a folder", "give a file name, e.g. -o engines/model.onnx")
    if not os.access(folder, os.W_OK):
        raise VanexportError(f"output folder '{folder}' is not writable", "choose a writable folder with -o")
    if path.exists() and not path.is_file():
        raise VanexportError(f"output path '{path}' exists and is not a regular file", "choose another -o path")
    return path


def _temp_name(suffix: str = "") -> str:
    return f"vanexport-{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike, min_age_s: float = _STALE_AFTER_S) -> list[str]:
    """Remove our temporary files and folders in `folder` whose process no longer runs (and that are at least
    `min_age_s` old); return their names."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = _TEMP.match(entry.name)
        if not m or _alive(int(m.group(1))):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < min_age_s:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds."""
    path = check_output_path(path)
    folder = path.parent if str(path.parent) else Path(".")
    remove_stale_temps(folder)
    tmp_path = folder / ("." + _temp_name(".tmp"))
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # the temp was made 0600; give the usual mode
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def temp_folder_beside(path: str | os.PathLike) -> Path:
    """A new, empty, hidden folder in `path`'s folder (for building a folder that is then renamed into place)."""
    parent = Path(path).parent if str(Path(path).parent) else Path(".")
    remove_stale_temps(parent)
    tmp = parent / ("." + _temp_name(".tmp"))
    tmp.mkdir(mode=0o700)
    return tmp


@contextlib.contextmanager
def work_folder() -> Iterator[Path]:
    """A private work folder in the system's temp folder, removed afterwards (and by a later run if we are killed)."""
    root = Path(tempfile.gettempdir())
    remove_stale_temps(root, _STALE_WORK_AFTER_S)
    folder = root / _temp_name()
    folder.mkdir(mode=0o700)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
