"""Downloading checkpoints into the cache: keyed by the URL (never by the file name), each file's sha256 recorded
beside it and checked again before it is reused, an optional pin (`URL#sha256=HEX`, or `--sha256`), a size cap,
an offline switch, and nothing kept from a download that failed or was cut short.

Files on the Hugging Face Hub (the authors' official b0-b3 checkpoints) go through huggingface_hub, which resumes
interrupted downloads, honours HF_ENDPOINT (mirrors) and HF_HUB_OFFLINE, and keeps its own cache under ours.
Anything else (http, https, file) is fetched with urllib.
"""
from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import VanexportError
from ..files import atomic_output, cache_folder, gigabytes_from_env, sha256_file

DEFAULT_MAX_GB = 4.0  # the largest VAN checkpoint (b6) is under 1 GB
_PIN = re.compile(r"^(?P<url>.*)#sha256=(?P<sha>[0-9a-fA-F]{8,64})$")
_HUB = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")
OFFLINE_HINT = "download the file yourself and pass --weights PATH, or unset VANEXPORT_OFFLINE / HF_HUB_OFFLINE"


def is_url(spec) -> bool:
    return urllib.parse.urlparse(split_pin(str(spec))[0]).scheme in ("http", "https", "file")


def split_pin(spec: str) -> tuple[str, str | None]:
    """'URL#sha256=HEX' -> ('URL', 'hex'); anything else -> (spec, None). 8 or more hex digits pin a prefix."""
    m = _PIN.match(spec)
    return (m.group("url"), m.group("sha").lower()) if m else (spec, None)


def offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on") for k in ("VANEXPORT_OFFLINE", "HF_HUB_OFFLINE"))


def max_bytes() -> int:
    """How big a download may be: $VANEXPORT_MAX_DOWNLOAD_GB (default 4)."""
    return gigabytes_from_env("VANEXPORT_MAX_DOWNLOAD_GB", DEFAULT_MAX_GB)


def check_pin(path: Path, pin: str | None, what: str) -> str:
    """The file's sha256, or a VanexportError when it does not start with `pin`."""
    digest = sha256_file(path)
    if pin and not digest.startswith(pin):
        raise VanexportError(f"{what} has sha256 {digest[:16]}..., not the pinned {pin[:16]}...",
                             "check the URL or the pin; a changed file is never used")
    return digest


def hub_file(url: str) -> dict | None:
    """repo_id, revision and filename when `url` is a file on the Hugging Face Hub (or its HF_ENDPOINT mirror)."""
    parsed = urllib.parse.urlparse(url)
    hosts = {"huggingface.co", urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "")).netloc} - {""}
    m = _HUB.match(parsed.path)
    if parsed.scheme in ("http", "https") and parsed.netloc in hosts and m:
        # a huggingface.co URL goes to the mirror when HF_ENDPOINT names one
        endpoint = os.environ.get("HF_ENDPOINT") if parsed.netloc == "huggingface.co" else None
        return {"repo_id": m.group("repo"), "revision": urllib.parse.unquote(m.group("revision")),
                "filename": urllib.parse.unquote(m.group("filename")),
                "endpoint": (endpoint or f"{parsed.scheme}://{parsed.netloc}").rstrip("/")}
    return None


def download(spec: str, sha256: str | None = None, progress: bool = True) -> Path:
    """The cached file for `spec` (a URL, optionally with '#sha256=HEX'), downloaded once. `sha256` pins the
    content too (a full digest or a prefix of 8+ hex digits)."""
    url, pin = split_pin(spec)
    pin = (sha256 or pin or "").lower() or None
    hub = hub_file(url)
    if hub is not None:
        return _from_hub(url, hub, pin)
    folder = cache_folder("downloads") / hashlib.sha256(url.encode()).hexdigest()[:32]
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name or "checkpoint.pth"
    dest, record_path = folder / name, folder / "source.json"
    cached = _cached(dest, record_path, url, pin)
    if cached is not None:
        return cached
    if offline():
        raise VanexportError(f"{url} is not in the download cache and downloads are off (offline mode)", OFFLINE_HINT)
    folder.mkdir(parents=True, exist_ok=True)
    digest, size = _fetch(url, dest, pin, progress)
    with atomic_output(record_path) as tmp:
        tmp.write_text(json.dumps({"url": url, "sha256": digest, "bytes": size}, indent=2) + "\n")
    return dest


def _cached(dest: Path, record_path: Path, url: str, pin: str | None) -> Path | None:
    """The cached file, if it is still what was downloaded from `url` (its recorded sha256) and fits the pin."""
    if not dest.is_file() or not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("url") != url or sha256_file(dest) != record.get("sha256"):
        return None  # changed on disk since: download again
    if pin and not record["sha256"].startswith(pin):
        raise VanexportError(f"{url} (cached) has sha256 {record['sha256'][:16]}..., not the pinned {pin[:16]}...",
                             "check the pin; if the file on the server changed, delete "
                             f"{dest.parent} to download it again")
    return dest


def _fetch(url: str, dest: Path, pin: str | None, progress: bool) -> tuple[str, int]:
    """Stream `url` into `dest` (atomically), refusing more than the size cap; (sha256, bytes)."""
    cap = max_bytes()
    try:
        response = urllib.request.urlopen(url, timeout=60)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise VanexportError(f"cannot download {url} ({reason})",
                             "check the network, or download the file yourself and pass --weights PATH") from e
    total = int(response.headers.get("Content-Length") or 0) or None
    if total and total > cap:
        response.close()
        raise VanexportError(f"{url} is {total / 2**30:.1f} GB, more than the {cap / 2**30:g} GB download cap",
                             "set VANEXPORT_MAX_DOWNLOAD_GB to allow it, or download it yourself")
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from ..progress import printable

    console = Console(stderr=True)
    h, size = hashlib.sha256(), 0
    with response, atomic_output(dest) as tmp, open(tmp, "wb") as out, Progress(
            TextColumn("{task.description}", style="progress.description", markup=False), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(),
            console=console, disable=not (progress and console.is_terminal), transient=True) as bar:
        task = bar.add_task(printable(f"downloading {dest.name}"), total=total)  # the name is text, not markup
        try:
            while block := response.read(1 << 20):
                size += len(block)
                if size > cap:
                    raise VanexportError(f"{url} sends more than the {cap / 2**30:g} GB download cap",
                                         "set VANEXPORT_MAX_DOWNLOAD_GB to allow it; nothing was kept")
                out.write(block)
                h.update(block)
                bar.advance(task, len(block))
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise  # writing failed (disk full...): reported as such
            raise VanexportError(f"the download of {url} broke off after {size / 1e6:.1f} MB ({e})",
                                 "try again; nothing was kept") from e
        if total and size != total:
            raise VanexportError(f"the download of {url} ended after {size} of {total} bytes",
                                 "try again; nothing was kept")
        digest = h.hexdigest()
        if pin and not digest.startswith(pin):
            raise VanexportError(f"the download of {url} has sha256 {digest[:16]}..., not the pinned {pin[:16]}...",
                                 "check the URL and the pin; nothing was kept")
    return digest, size


def _from_hub(url: str, hub: dict, pin: str | None) -> Path:
    """A file on the Hugging Face Hub, through huggingface_hub (resumable, offline-aware, HF_ENDPOINT mirrors)."""
    try:
        import huggingface_hub
    except ImportError as e:
        raise VanexportError("downloading from the Hugging Face Hub needs the huggingface_hub package",
                             "pip install huggingface_hub (the export extra has it)") from e
    kwargs = dict(repo_id=hub["repo_id"], filename=hub["filename"], revision=hub["revision"],
                  endpoint=hub["endpoint"])
    cache = str(cache_folder("huggingface"))
    if not offline() and (reason := _unreachable(hub["endpoint"])) is not None:
        return _from_hub_cache(url, hub, dict(kwargs, cache_dir=cache), pin, reason)
    try:
        if not offline():
            size = huggingface_hub.get_hf_file_metadata(huggingface_hub.hf_hub_url(**kwargs),
                                                        endpoint=hub["endpoint"]).size
            if size and size > max_bytes():
                raise VanexportError(f"{url} is {size / 2**30:.1f} GB, more than the {max_bytes() / 2**30:g} GB "
                                     "download cap", "set VANEXPORT_MAX_DOWNLOAD_GB to allow it")
        path = Path(huggingface_hub.hf_hub_download(**kwargs, cache_dir=cache, local_files_only=offline()))
    except VanexportError:
        raise
    except Exception as e:  # huggingface_hub's own errors (offline miss, 404, HTTP, network)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        if offline():
            raise VanexportError(f"{url} is not in the download cache and downloads are off (offline mode)",
                                 OFFLINE_HINT) from e
        raise VanexportError(f"cannot download {url} ({type(e).__name__}: {first})",
                             "check the network (or HF_ENDPOINT), or download the file yourself and pass --weights PATH"
                             ) from e
    check_pin(path, pin, url)
    return path


def _unreachable(endpoint: str) -> str | None:
    """Why `endpoint` cannot be reached at all (one HEAD request: no retries, a short timeout, proxies honoured as
    huggingface_hub honours them), or None when it answers anything. huggingface_hub retries a connection that
    fails 5 times over about 23 s, printing each retry; a machine without network is told at once instead."""
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=15).close()
    except urllib.error.HTTPError:
        return None  # it answered (with an error status for the bare endpoint): the Hub decides the rest
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
        return str(getattr(e, "reason", e) or type(e).__name__)[:200]
    return None


def _from_hub_cache(url: str, hub: dict, kwargs: dict, pin: str | None, reason: str) -> Path:
    """The Hub cannot be reached: its cached copy (what huggingface_hub itself would fall back to), or one line."""
    import huggingface_hub

    try:
        path = Path(huggingface_hub.hf_hub_download(**kwargs, local_files_only=True))
    except Exception as e:  # not in huggingface_hub's cache
        raise VanexportError(f"cannot download {url}: {hub['endpoint']} cannot be reached ({reason})",
                             "check the network (or HF_ENDPOINT), or download the file yourself and pass "
                             "--weights PATH") from e
    check_pin(path, pin, url)
    return path
