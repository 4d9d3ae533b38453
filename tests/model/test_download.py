"""Downloads: keyed by URL, pinned, capped, offline-aware, never half-kept; the Hub path against a local stand-in of
the Hugging Face Hub (its resolve protocol: HEAD with X-Repo-Commit and ETag, then GET), the rest with file:// URLs."""
import hashlib
import http.server
import threading

import pytest

from vanexport.errors import VanexportError
from vanexport.model import download


def _file(tmp_path, rel, data: bytes):
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return "file://" + str(path)


def test_two_urls_with_the_same_file_name_are_two_cache_entries(tmp_path):
    a = _file(tmp_path, "a/van.pth", b"weights of run A")
    b = _file(tmp_path, "b/van.pth", b"weights of run B")
    pa, pb = download.download(a), download.download(b)
    assert pa != pb and pa.read_bytes() == b"weights of run A" and pb.read_bytes() == b"weights of run B"
    assert download.download(a) == pa  # cached


def test_pins_by_argument_and_in_the_url(tmp_path):
    data = b"pinned checkpoint"
    digest = hashlib.sha256(data).hexdigest()
    url = _file(tmp_path, "v.pth", data)
    assert download.download(url, sha256=digest).read_bytes() == data
    assert download.download(f"{url}#sha256={digest[:8]}").read_bytes() == data  # a prefix (OpenMMLab style)
    with pytest.raises(VanexportError, match="not the pinned"):
        download.download(f"{url}#sha256={'0' * 64}")  # the cached copy does not fit the pin either


def test_a_wrong_download_keeps_nothing(tmp_path):
    url = _file(tmp_path, "v.pth", b"bytes")
    with pytest.raises(VanexportError, match="not the pinned"):
        download.download(url, sha256="0" * 64)
    cached = list((tmp_path / "cache" / "downloads").rglob("*"))
    assert [p for p in cached if p.is_file()] == []  # neither the file nor a record, nor a temp file
    with pytest.raises(VanexportError, match="cannot download"):
        download.download("file://" + str(tmp_path / "absent.pth"))


def test_a_cached_file_changed_on_disk_is_downloaded_again(tmp_path):
    url = _file(tmp_path, "v.pth", b"original")
    path = download.download(url)
    path.write_bytes(b"tampered")
    assert download.download(url).read_bytes() == b"original"


def test_the_size_cap(tmp_path, monkeypatch):
    url = _file(tmp_path, "big.pth", b"x" * 4096)
    monkeypatch.setenv("VANEXPORT_MAX_DOWNLOAD_GB", str(1000 / 2**30))
    with pytest.raises(VanexportError, match="download cap"):
        download.download(url)
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))
    monkeypatch.setenv("VANEXPORT_MAX_DOWNLOAD_GB", "lots")
    with pytest.raises(VanexportError, match="is not a number"):
        download.download(url)


def test_offline_uses_the_cache_and_says_so_otherwise(tmp_path, monkeypatch):
    url = _file(tmp_path, "v.pth", b"cached before going offline")
    path = download.download(url)
    monkeypatch.setenv("VANEXPORT_OFFLINE", "1")
    assert download.download(url) == path
    with pytest.raises(VanexportError, match="offline mode.*--weights PATH"):
        download.download(_file(tmp_path, "other.pth", b"never fetched"))


def test_pinned_local_checkpoint_is_checked_before_loading(b0, tmp_path):
    import torch

    from vanexport.model.factory import load_model

    _, sd = b0
    torch.save(sd, tmp_path / "w.pth")
    digest = hashlib.sha256((tmp_path / "w.pth").read_bytes()).hexdigest()
    _, _, info = load_model("b0", f"{tmp_path / 'w.pth'}#sha256={digest}")
    assert info.source == str(tmp_path / "w.pth")  # the pin is not part of the recorded source
    with pytest.raises(VanexportError, match="not the pinned"):
        load_model("b0", f"{tmp_path / 'w.pth'}#sha256={'f' * 16}")


@pytest.fixture
def hub(tmp_path):
    """A local stand-in of the Hugging Face Hub serving one file; yields (url, bytes, requests seen)."""
    data = b"hub checkpoint bytes " * 512
    sha = hashlib.sha256(data).hexdigest()
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _head(self):
            seen.append((self.command, self.path))
            if not self.path.endswith("/resolve/main/van_tiny_754.pth.tar"):
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.end_headers()
                return False
            self.send_response(200)
            self.send_header("X-Repo-Commit", "a" * 40)
            self.send_header("ETag", f'"{sha}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return True

        def do_HEAD(self):
            self._head()

        def do_GET(self):
            if self._head():
                self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        yield f"{base}/Visual-Attention-Network/VAN-Tiny-original/resolve/main/van_tiny_754.pth.tar", data, seen
    finally:
        server.shutdown()


def test_hub_files_go_through_huggingface_hub(hub, monkeypatch):
    url, data, seen = hub
    monkeypatch.setenv("HF_ENDPOINT", url.split("/Visual")[0])  # our server is the Hub's mirror
    assert download.hub_file(url)["repo_id"] == "Visual-Attention-Network/VAN-Tiny-original"
    path = download.download(url)
    assert path.read_bytes() == data and "huggingface" in path.parts  # huggingface_hub's cache, under ours
    assert ("GET", "/Visual-Attention-Network/VAN-Tiny-original/resolve/main/van_tiny_754.pth.tar") in seen
    official = "https://huggingface.co/Visual-Attention-Network/VAN-Tiny-original/resolve/main/van_tiny_754.pth.tar"
    assert download.download(official) == path  # the official URL, through the mirror
    monkeypatch.setenv("VANEXPORT_OFFLINE", "1")
    assert download.download(url) == path
    with pytest.raises(VanexportError, match="offline mode"):
        download.download(url.replace("van_tiny", "van_small"))
    monkeypatch.delenv("VANEXPORT_OFFLINE")
    with pytest.raises(VanexportError, match="cannot download .*van_small"):
        download.download(url.replace("van_tiny", "van_small"))
    with pytest.raises(VanexportError, match="not the pinned"):
        download.download(url, sha256="0" * 64)


def test_official_weights_that_cannot_be_fetched_point_to_the_offline_model(monkeypatch):
    """`--weights official` without the network: the error says how to follow the journey offline."""
    from vanexport.model.factory import load_model

    monkeypatch.setenv("VANEXPORT_OFFLINE", "1")
    for variant in ("b0", "b4"):  # the Hub (b0-b3) and a plain URL (b4)
        with pytest.raises(VanexportError, match=r"offline mode.*python -m vanexport\.zoo\.digits digits/") as e:
            load_model(variant, "official")
        assert str(e.value).count("\n") == 0
