"""Downloads against a real HTTP server on 127.0.0.1: good, corrupt, dead and truncated mirrors."""

from __future__ import annotations

import gzip
import hashlib
import io
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from xpnet.datasets import DatasetUnavailableError, DownloadError, download, load_mnist
from xpnet.datasets.idx import encode_idx


@dataclass
class Route:
    body: bytes
    status: int = 200
    declared: int | None = None  # Content-Length to announce; None: the real length


@dataclass
class Server:
    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def url(self, prefix: str) -> str:
        return f"{self.base}/{prefix}/"


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's spelling)
            server.hits.append(self.path)
            route = server.routes.get(self.path)
            if route is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(route.status)
            length = len(route.body) if route.declared is None else route.declared
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(route.body)
            self.close_connection = True  # then the socket closes, short of Content-Length

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    state = Server(base="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XPNET_SYSTEM_DATA", str(tmp_path / "system"))
    monkeypatch.setenv("XPNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("XPNET_DATA", raising=False)
    return tmp_path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def gz_idx(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        gz.write(encode_idx(array))
    return buffer.getvalue()


IMAGES = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
LABELS = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
TEST_FILES = {
    "t10k-images-idx3-ubyte.gz": gz_idx(IMAGES),
    "t10k-labels-idx1-ubyte.gz": gz_idx(LABELS),
}
TEST_SHA = {name: sha(body) for name, body in TEST_FILES.items()}


def serve(server: Server, prefix: str, files: dict[str, bytes]) -> None:
    for name, body in files.items():
        server.routes[f"/{prefix}/{name}"] = Route(body)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_download(server: Server, tmp_path: Path) -> None:
    body = TEST_FILES["t10k-labels-idx1-ubyte.gz"]
    serve(server, "good", {"t10k-labels-idx1-ubyte.gz": body})
    path = download(
        "t10k-labels-idx1-ubyte.gz",
        tmp_path / "c",
        [server.url("good")],
        sha(body),
        progress=False,
    )
    assert path.read_bytes() == body
    assert leftovers(tmp_path / "c") == ["t10k-labels-idx1-ubyte.gz"]


def test_progress_bar_when_enabled(server: Server, tmp_path: Path) -> None:
    body = TEST_FILES["t10k-images-idx3-ubyte.gz"]
    serve(server, "good", {"t10k-images-idx3-ubyte.gz": body})
    stream = io.StringIO()
    download(
        "t10k-images-idx3-ubyte.gz",
        tmp_path,
        [server.url("good")],
        sha(body),
        progress=True,
        stream=stream,
    )
    assert f"{len(body)}/{len(body)}" in stream.getvalue()
    quiet = io.StringIO()  # not a terminal: progress=None stays silent
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    download("t10k-images-idx3-ubyte.gz", tmp_path, [server.url("good")], sha(body), stream=quiet)
    assert quiet.getvalue() == ""


def test_checksum_mismatch_leaves_nothing(server: Server, tmp_path: Path) -> None:
    body = TEST_FILES["t10k-labels-idx1-ubyte.gz"]
    serve(server, "bad", {"t10k-labels-idx1-ubyte.gz": body[:-1] + bytes([body[-1] ^ 1])})
    with pytest.raises(DownloadError) as info:
        download("t10k-labels-idx1-ubyte.gz", tmp_path / "c", [server.url("bad")], sha(body))
    assert "SHA-256 mismatch: expected " + sha(body) in str(info.value)
    assert info.value.failures[0][0] == server.url("bad") + "t10k-labels-idx1-ubyte.gz"
    assert leftovers(tmp_path / "c") == []


def test_dead_then_missing_then_good_mirror(server: Server, dead_url: str, tmp_path: Path) -> None:
    body = TEST_FILES["t10k-labels-idx1-ubyte.gz"]
    serve(server, "good", {"t10k-labels-idx1-ubyte.gz": body})
    mirrors = [dead_url, server.url("missing"), server.url("good")]
    path = download("t10k-labels-idx1-ubyte.gz", tmp_path, mirrors, sha(body))
    assert path.read_bytes() == body
    assert server.hits == ["/missing/t10k-labels-idx1-ubyte.gz", "/good/t10k-labels-idx1-ubyte.gz"]


def test_truncated_transfer_leaves_nothing(server: Server, tmp_path: Path) -> None:
    body = TEST_FILES["t10k-images-idx3-ubyte.gz"]
    server.routes["/short/t10k-images-idx3-ubyte.gz"] = Route(body[:1000], declared=len(body))
    assert len(body) > 1000
    with pytest.raises(DownloadError) as info:
        download("t10k-images-idx3-ubyte.gz", tmp_path / "c", [server.url("short")], sha(body))
    assert f"server announced {len(body)} bytes, received 1000" in str(info.value)
    assert leftovers(tmp_path / "c") == []


def test_error_lists_every_mirror_and_reason(server: Server, dead_url: str, tmp_path: Path) -> None:
    body = TEST_FILES["t10k-labels-idx1-ubyte.gz"]
    serve(server, "bad", {"t10k-labels-idx1-ubyte.gz": b"garbage"})
    mirrors = [dead_url, server.url("missing"), server.url("bad")]
    with pytest.raises(DownloadError) as info:
        download("t10k-labels-idx1-ubyte.gz", tmp_path, mirrors, sha(body))
    message = str(info.value)
    assert len(info.value.failures) == 3
    assert dead_url + "t10k-labels-idx1-ubyte.gz: cannot connect" in message
    assert "missing/t10k-labels-idx1-ubyte.gz: HTTP 404" in message
    assert "bad/t10k-labels-idx1-ubyte.gz: SHA-256 mismatch" in message
    assert leftovers(tmp_path) == []


def test_load_mnist_downloads_into_cache_then_reuses_it(server: Server, env: Path) -> None:
    serve(server, "m", TEST_FILES)
    X, y = load_mnist("test", mirrors=[server.url("m")], sha256=TEST_SHA, progress=False)
    assert X.shape == (5, 784) and y.tolist() == [3, 1, 4, 1, 5]
    np.testing.assert_array_equal(X, IMAGES.reshape(5, -1))
    assert leftovers(env / "cache" / "mnist") == sorted(TEST_FILES)
    hits = len(server.hits)
    X2, _ = load_mnist("test", mirrors=[server.url("m")], sha256=TEST_SHA)
    assert len(server.hits) == hits  # served from the cache, no new request
    np.testing.assert_array_equal(X2, X)


def test_load_mnist_failed_download_names_how_to_get_it(
    server: Server, dead_url: str, env: Path
) -> None:
    serve(server, "bad", {name: b"corrupt" for name in TEST_FILES})
    with pytest.raises(DatasetUnavailableError) as info:
        load_mnist("test", mirrors=[dead_url, server.url("bad")], sha256=TEST_SHA)
    message = str(info.value)
    assert "MNIST (test split) is not available" in message
    assert "cannot connect" in message and "SHA-256 mismatch" in message
    assert "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz" in message
    assert "XPNET_DATA" in message and "--data-dir" in message
    assert leftovers(env / "cache" / "mnist") == []


def test_load_mnist_never_falls_back_to_the_sample(dead_url: str, env: Path) -> None:
    with pytest.raises(DatasetUnavailableError, match="never used in place of MNIST"):
        load_mnist(
            "train",
            mirrors=[dead_url],
            sha256={
                "train-images-idx3-ubyte.gz": "0" * 64,
                "train-labels-idx1-ubyte.gz": "0" * 64,
            },
        )
