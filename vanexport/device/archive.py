"""Reading bundle archives: unpacking that checks everything before it keeps a byte.

Unpacking refuses, with one line and nothing extracted: members with absolute paths or `..`, links (a link
pointing outside the bundle is named as such), devices and pipes, duplicate names, a file with another member
inside it (`x` and `x/y`), files not listed in manifest.json or missing from the archive, a member whose size
differs from the one listed, archives that would expand beyond a cap (`VANEXPORT_MAX_BUNDLE_GB`, default 16) or
beyond the free disk space, files whose sha256 differs from the manifest, and manifests of a newer schema version
than this vanexport reads. Sizes are checked from the tar headers before any data is read; files are written by
this module (never `tarfile.extract`), never beyond their listed size, into a fresh folder that is deleted on any
failure.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from pathlib import Path

from ..errors import VanexportError
from ..files import gigabytes_from_env, name_max, regular_file, sha256_file, temp_folder_beside
from ..formats.bundle_manifest import MANIFEST, SCHEMA_VERSION, NewerSchema, check_envelope
from ..formats.records import member_path

_CHUNK = 1 << 20
MANIFEST_MAX_BYTES = 16 * 2**20  # a manifest lists files; it is never megabytes long
DEFAULT_MAX_GB = 16.0


def max_bundle_bytes() -> int:
    """How much a bundle may expand to: $VANEXPORT_MAX_BUNDLE_GB (default 16)."""
    return gigabytes_from_env("VANEXPORT_MAX_BUNDLE_GB", DEFAULT_MAX_GB)


class UnsafeBundle(VanexportError):
    """An archive that is malformed, tampered with, or trying to write outside its folder."""


class FolderTaken(VanexportError):
    """The folder to unpack into is not empty (another unpack may have just filled it)."""


def check_member_name(name: str, archive: str = "") -> str:
    """The member name as a safe relative POSIX path, or an UnsafeBundle error. Tar writers differ in how they
    spell a folder (`./a/`, `a/`), so `.` and empty parts are dropped before the name is checked."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/"):
        parts.insert(0, "")  # keep an absolute name absolute
    try:
        return member_path("/".join(parts) if parts else "")
    except ValueError as e:
        _refuse(archive, f"member {e}")


def _refuse(archive: str, problem: str):
    where = f"bundle '{archive}'" if archive else "bundle"
    raise UnsafeBundle(f"refusing {where}: {problem}",
                       "nothing was extracted; get the bundle again from its source (it is damaged or was tampered with)")


def _check_link(m: tarfile.TarInfo, name: str, archive: str) -> None:
    target = m.linkname
    # A symlink's target is relative to its own folder; a hard link's to the archive root.
    base = posixpath.dirname(name) if m.issym() else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        _refuse(archive, f"member '{name}' is a link pointing outside the bundle (-> {target})")
    _refuse(archive, f"member '{name}' is a link (-> {target}); bundles hold only regular files")


def _open_tar(path: Path) -> tarfile.TarFile:
    regular_file(path, "bundle", "pass a .tar.gz made by `vanexport bundle`")
    try:
        return tarfile.open(path, "r:gz")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise UnsafeBundle(f"'{path}' is not a readable .tar.gz ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})",
                           "pass a bundle made by `vanexport bundle`; download it again if it was cut short") from e


def _check_manifest(data: bytes, archive: str) -> tuple[dict, dict]:
    """(the manifest, its listed files), or a refusal."""
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        _refuse(archive, f"{MANIFEST} is not valid JSON")
    try:
        return manifest, check_envelope(manifest)
    except NewerSchema as e:
        raise VanexportError(
            f"bundle '{archive}' uses bundle schema {e.version}, made by vanexport {e.made_by}; "
            f"this vanexport reads schema {SCHEMA_VERSION} at most",
            "upgrade vanexport on this machine (pip install -U vanexport); nothing was extracted") from None
    except ValueError as e:
        _refuse(archive, str(e))


def _members(tar: tarfile.TarFile, archive: str) -> dict[str, tarfile.TarInfo]:
    """Every regular file of the archive by its checked name, reading headers one at a time: an archive that
    expands beyond the cap is refused at the header that crosses it, before its data is decompressed."""
    cap, total = max_bundle_bytes(), 0
    files: dict[str, tarfile.TarInfo] = {}
    while True:
        try:
            m = tar.next()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise UnsafeBundle(f"'{archive}' is a damaged .tar.gz ({e})", "download the bundle again") from e
        if m is None:
            break
        name = check_member_name(m.name, archive)
        if m.issym() or m.islnk():
            _check_link(m, name, archive)
        if m.isdir():
            continue
        if not m.isfile():
            _refuse(archive, f"member '{name}' is not a regular file (device, pipe or other special file)")
        if name in files:
            _refuse(archive, f"member '{name}' appears twice")
        total += m.size
        if total > cap:
            _refuse(archive, f"it expands to more than {cap / 2**30:g} GB (set VANEXPORT_MAX_BUNDLE_GB to allow more)")
        files[name] = m
    for name in files:
        parent = posixpath.dirname(name)
        while parent:
            if parent in files:
                _refuse(archive, f"member '{name}' lies inside '{parent}', which is a file")
            parent = posixpath.dirname(parent)
    return files


def read_bundle(archive: str | os.PathLike, extract_to: str | os.PathLike | None = None, progress=None) -> dict:
    """Check a bundle archive completely and return its manifest; with `extract_to` (a folder that must not
    exist yet), also unpack it there. On any failure the folder does not exist afterwards. `progress` (see
    vanexport.progress) counts the bytes checked."""
    from ..progress import as_progress

    path = Path(archive)
    tar = _open_tar(path)
    dest = Path(extract_to) if extract_to is not None else None
    created = False
    try:
        with tar:
            files = _members(tar, str(path))
            if MANIFEST not in files:
                _refuse(str(path), f"it has no {MANIFEST}, so it is not a vanexport bundle")
            if files[MANIFEST].size > MANIFEST_MAX_BYTES:
                _refuse(str(path), f"its {MANIFEST} is {files[MANIFEST].size / 2**20:.0f} MB long")
            manifest, listed = _check_manifest(tar.extractfile(files[MANIFEST]).read(), str(path))
            for name, m in files.items():
                if name == MANIFEST:
                    continue
                if name not in listed:
                    _refuse(str(path), f"member '{name}' is not listed in {MANIFEST}")
                if m.size != listed[name].size:
                    _refuse(str(path), f"member '{name}' holds {m.size} bytes but {MANIFEST} lists {listed[name].size}")
            for name in listed:
                if name not in files:
                    _refuse(str(path), f"file '{name}' listed in {MANIFEST} is missing from the archive")
            if dest is not None:
                _check_free_space(dest.parent if str(dest.parent) else Path("."), sum(m.size for m in files.values()))
                dest.mkdir(parents=False, exist_ok=False)
                created = True
            what = "checking and unpacking" if dest is not None else "checking"
            with as_progress(progress).task(f"{what} {path.name}", sum(m.size for m in files.values()),
                                            "bytes") as task:
                for name, m in files.items():
                    target = dest / name if dest is not None else None
                    digest = _copy_hashing(tar.extractfile(m), target, m.size, task)
                    if name != MANIFEST and digest != listed[name].sha256:
                        _refuse(str(path), f"file '{name}' does not match its sha256 in {MANIFEST}")
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    return manifest


def _check_free_space(folder: Path, needed: int) -> None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if needed > free:
        raise VanexportError(f"unpacking needs {needed / 1e6:.1f} MB but '{folder}' has only {free / 1e6:.1f} MB free",
                             "free some space, or unpack elsewhere (-o, or VANEXPORT_CACHE for the cache)")


def _expected_sha(entry) -> str | None:
    return entry.get("sha256") if isinstance(entry, dict) else None


def _copy_hashing(src, target: Path | None, size: int, task=None) -> str:
    """sha256 of exactly `size` bytes of `src`, written to `target` when given (never more than that)."""
    h = hashlib.sha256()
    out = None
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = open(target, "xb")  # exclusive: a fresh folder, so nothing can be overwritten or followed
    left = size
    with contextlib.ExitStack() as stack:
        if out is not None:
            stack.enter_context(out)
        while left > 0 and (block := src.read(min(_CHUNK, left))):
            left -= len(block)
            h.update(block)
            if task is not None:
                task.advance(len(block))
            if out is not None:
                out.write(block)
    return h.hexdigest()


def extract_verified(archive: str | os.PathLike, dest: str | os.PathLike, progress=None) -> dict:
    """Unpack a checked bundle into `dest` (created; it must not exist or be empty) via a temp folder beside it,
    renamed into place in one step: nobody ever sees a half-unpacked `dest`. Of several unpacks into one folder at
    once, one wins and the others are refused as they would be after it ("already exists")."""
    dest = _check_unpack_folder(Path(dest))
    tmp = temp_folder_beside(dest)
    tmp.rmdir()  # read_bundle creates it, so a failure leaves nothing behind
    manifest = read_bundle(archive, tmp, progress)
    try:
        os.replace(tmp, dest)  # replaces an empty folder; a full one (another unpack won) raises
    except OSError as e:
        if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise _taken(dest, " (another process unpacked into it meanwhile)") from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _taken(dest: Path, why: str = "") -> VanexportError:
    return FolderTaken(f"'{dest}' already exists and is not an empty folder{why}", "choose a new folder with -o")


def _check_unpack_folder(dest: Path) -> Path:
    """`dest` if a bundle can be unpacked there (a new or empty folder in a writable folder), else one line."""
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise VanexportError(f"folder '{parent}' {'is not a folder' if parent.exists() else 'does not exist'}",
                             "create it first or choose another -o")
    if len(os.fsencode(dest.name)) > name_max(parent):  # before anything stats it (ENAMETOOLONG)
        raise VanexportError(f"folder name '{dest.name[:40]}...' is longer than this file system allows "
                             f"({name_max(parent)} bytes)", "choose a shorter -o name")
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise VanexportError(f"cannot unpack into '{dest}' ({e.strerror})", "choose another -o folder") from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise VanexportError(f"'{dest}' is a symbolic link", "choose a new folder with -o (links are not followed)")
    if st is not None and (not stat.S_ISDIR(st.st_mode) or any(dest.iterdir())):
        raise _taken(dest)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise VanexportError(f"folder '{parent}' is not writable", "choose a writable folder with -o")
    return dest


def discard_folder(folder: Path) -> None:
    """Remove `folder` (or a file or link in its place), first renaming it aside, so that a removal cut short
    never leaves a half folder under its name (the aside name is reclaimed by a later run)."""
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        folder.unlink()
        return
    aside = temp_folder_beside(folder)
    os.replace(folder, aside / "old")
    shutil.rmtree(aside, ignore_errors=True)


def verify_tree(root: str | os.PathLike, manifest: dict) -> list[str]:
    """Files under an unpacked bundle that are missing or differ from the manifest (empty when intact)."""
    root = Path(root)
    bad = []
    for name, entry in manifest["files"].items():
        p = root / name
        if not p.is_file() or _file_sha(p) != _expected_sha(entry):
            bad.append(name)
    return bad


def _file_sha(path: Path) -> str:
    return sha256_file(path)
