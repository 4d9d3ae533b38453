"""Small file helpers: atomic writes, work folders, hashes, the cache folder, and reading only regular files, so no
command leaves a half-written file or hangs on a pipe.

Temporary files and folders are named `.vanexport-<pid>-<start>-<ns>-<random>.tmp` (beside the output) and
`vanexport-<pid>-<start>-<ns>-<random>` (work folders in the system's temp folder): the process id, its start time
(so a reused pid is not taken for the same process) and its pid namespace (so a process of another container that
shares the folder is not taken for a dead one). A run killed outright (SIGKILL, power loss) cannot clean up after
itself, so the next run that writes into the same folder removes ours whose process is gone.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
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

_TEMP = re.compile(r"^\.?vanexport-(?P<pid>\d+)(?:-(?P<start>\d+)-(?P<ns>\d+))?-[0-9a-f]{8}(\.tmp)?$")
# For names without a start time and namespace (older vanexport, or no /proc), whose process only looks gone:
_STALE_AFTER_S = 10  # a fresh temp of a process that has just exited is not worth racing for
# The system temp folder may be shared with other PID namespaces (containers), where a live process looks dead.
_STALE_WORK_AFTER_S = 24 * 3600
MAX_GB = 2.0**20  # a size limit above a pebibyte is a typo, not a plan


def cache_dir() -> Path:
    """Where downloads and unpacked bundles are kept: $VANEXPORT_CACHE, else $XDG_CACHE_HOME/vanexport."""
    root = os.environ.get("VANEXPORT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "vanexport")
    return Path(root)


_CACHE_HINT = "set VANEXPORT_CACHE to a folder of your own that you can write to"


def cache_folder(*parts: str) -> Path:
    """The cache folder (or the folder `parts` below it), created if need be, checked to be a folder this user
    owns and can write to. A symlink is followed only when this user made it (a link planted by someone else
    would send our files where they choose). Every problem is one line naming the folder."""
    root = cache_dir()
    _own_folder(root)
    folder = root.joinpath(*parts)
    if parts:
        _own_folder(folder)
    return folder


def _own_folder(folder: Path) -> None:
    """Create `folder` if it is missing; refuse it unless it is a folder of ours that we can write to."""
    def refuse(problem: str):
        raise VanexportError(f"cache folder '{folder}' {problem}", _CACHE_HINT)

    try:
        if not os.path.lexists(folder):
            folder.mkdir(parents=True, mode=0o700, exist_ok=True)
        link = os.lstat(folder)
        st = os.stat(folder)
    except OSError as e:
        refuse(f"cannot be used ({e.strerror or e})")
    if stat.S_ISLNK(link.st_mode) and link.st_uid != os.geteuid():
        refuse("is a symbolic link made by another user")
    if not stat.S_ISDIR(st.st_mode):
        refuse("is not a folder" + (" (a device)" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else ""))
    if st.st_uid != os.geteuid():
        refuse("belongs to another user")
    if not os.access(folder, os.W_OK | os.X_OK):
        refuse("is not writable")


@contextlib.contextmanager
def folder_lock(folder: Path, waiting=None) -> Iterator[None]:
    """Hold an exclusive lock on `folder` itself for the block (flock on the folder: no lock file to leave
    behind; the kernel releases it when the process dies, so a killed holder never blocks the next run).
    `waiting()` is called once if another process holds it. Where locks are not supported (Windows, some
    network file systems) the block runs unlocked: what it does must be safe anyway (atomic renames)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass  # no locks here (ENOLCK): unlocked
        yield
    finally:
        os.close(fd)


def gigabytes_from_env(name: str, default_gb: float) -> int:
    """A size limit in bytes from $name, given in GB (default `default_gb`); anything but a number above 0 and at
    most MAX_GB (a word, nan, inf, a negative number, 1e400) is one line naming the variable and the range."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return int(default_gb * 2**30)
    try:
        gb = float(text)
    except ValueError:
        gb = math.nan
    if not 0 < gb <= MAX_GB:  # also false for nan; inf and 1e400 are above MAX_GB
        raise VanexportError(f"{name}={text[:40]!r} is {'not a number' if math.isnan(gb) else 'out of range'}",
                             f"set it to a size in GB above 0 and at most {MAX_GB:.0f}, e.g. {default_gb:g} "
                             "(or unset it)")
    return int(gb * 2**30)


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


def _start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), or None (no such process,
    or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat_line = f.read()
        return int(stat_line[stat_line.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _pid_namespace() -> int | None:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _owner_tag() -> str:
    """`<pid>-<start>-<namespace>` of this process, or only `<pid>` where /proc cannot tell."""
    pid, start, ns = os.getpid(), _start_time(os.getpid()), _pid_namespace()
    return f"{pid}-{start}-{ns}" if start is not None and ns is not None else str(pid)


def _temp_name(suffix: str = "") -> str:
    return f"vanexport-{_owner_tag()}-{secrets.token_hex(4)}{suffix}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _gone(m: re.Match, age_s: float, unsure_after_s: float) -> bool:
    """Whether the process that made temp `m` is gone. Sure when the name records the start time in our own pid
    namespace: no process has that pid, or one that started at another time (the pid was reused). Otherwise the
    pid only looks gone, which is believed after `unsure_after_s`."""
    pid = int(m["pid"])
    if m["start"] is not None and int(m["ns"]) == _pid_namespace():
        start = _start_time(pid)
        return start != int(m["start"]) if start is not None else not _alive(pid)
    return not _alive(pid) and age_s >= unsure_after_s


def remove_stale_temps(folder: str | os.PathLike, min_age_s: float = _STALE_AFTER_S) -> list[str]:
    """Remove our temporary files and folders in `folder` whose process is gone (see `_gone`; a name without a
    start time is believed gone only after `min_age_s`); return their names."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = _TEMP.match(entry.name)
        if not m:
            continue
        try:
            if not _gone(m, now - entry.stat(follow_symlinks=False).st_mtime, min_age_s):
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
