"""Checks shared by the record parsers: required keys, member paths inside a bundle, sha256 digests."""
from __future__ import annotations

import re

_SHA256 = re.compile(r"[0-9a-f]{64}")


def require(d, keys, what: str) -> dict:
    """`d` is a dict holding every key in `keys`, else ValueError naming the first one missing."""
    if not isinstance(d, dict):
        raise ValueError(f"{what} is not a JSON object")
    for k in keys:
        if k not in d or d[k] is None:
            raise ValueError(f"{what} has no '{k}'")
    return d


def member_path(name) -> str:
    """`name` as a normalised relative POSIX path inside a bundle, or ValueError saying why it is not one.

    Refused: empty names, absolute paths (/x, C:x, \\\\x), backslashes, NUL, '..' anywhere, '.' or empty parts
    (a/./b, a//b, trailing /): a name the manifest gives must be exactly the member's name in the archive."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{name!r} is not a file name")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ValueError(f"'{name}' is an absolute path")
    if "\\" in name or "\x00" in name:
        raise ValueError(f"{name!r} has a backslash or NUL in it")
    parts = name.split("/")
    if ".." in parts:
        raise ValueError(f"'{name}' climbs out of the bundle folder ('..')")
    if any(p in ("", ".") for p in parts):
        raise ValueError(f"'{name}' is not a normalised path")
    return name


def sha256_hex(value, what: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError(f"{what} is not a sha256 digest")
    return value
