"""Writing bundle archives: reproducible tar.gz files (fixed owners, times and modes; manifest first, then sorted
names), so the same content gives the same bytes."""
from __future__ import annotations

import gzip
import io
import json
import os
import tarfile

from ..device.archive import check_member_name
from ..formats.bundle_manifest import MANIFEST


def write_archive(out: str | os.PathLike, manifest: dict, files: dict[str, str | os.PathLike | bytes]) -> None:
    """Write manifest.json and `files` (archive name -> path or bytes) as a gzip tarball at `out`.

    Regular files only, manifest first, then sorted names; owners, times and modes are fixed so the same
    content gives the same bytes.
    """
    with open(out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        _add(tar, MANIFEST, io.BytesIO(body), len(body))
        for name in sorted(files):
            src = files[name]
            if isinstance(src, bytes):
                _add(tar, name, io.BytesIO(src), len(src))
            else:
                with open(src, "rb") as f:
                    _add(tar, name, f, os.fstat(f.fileno()).st_size)


def _add(tar: tarfile.TarFile, name: str, fileobj, size: int) -> None:
    check_member_name(name)
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = size, 0o644, 0, 0, 0, "", ""
    tar.addfile(info, fileobj)
