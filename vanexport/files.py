"""Small file helpers: atomic writes, hashes and the cache folder, so no command leaves a half-written file."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import VanexportError


def cache_dir() -> Path:
    """Where downloads and unpacked bundles are kept: $VANEXPORT_CACHE, else $XDG_CACHE_HOME/vanexport."""
    root = os.environ.get("VANEXPORT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "vanexport")
    return Path(root)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail early (before any slow work) when `path` cannot be written."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise VanexportError(f"output path '{path}' is a folder", "give a file name, e.g. -o engines/model.onnx")
    if not folder.exists():
        raise VanexportError(f"output folder '{folder}' does not exist", "create it first or choose another -o path")
    if not os.access(folder, os.W_OK):
        raise VanexportError(f"output folder '{folder}' is not writable", "choose a writable folder with -o")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds."""
    path = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
