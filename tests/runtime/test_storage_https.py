"""https:// (here plain http on loopback) downloads from a real HTTP server thread:
single files, archives, checksums and HTTP errors."""

from __future__ import annotations

import functools
import hashlib
import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kubeserve_runtime.storage import DownloadOptions, StorageError, download


class _Handler(SimpleHTTPRequestHandler):
    """Serves a directory; /private/... answers 403, and redirects /old/... to /..."""

    def do_GET(self) -> None:
        """Serve, refuse or redirect."""
        if self.path.startswith("/private/"):
            self.send_error(403, "Forbidden")
            return
        if self.path.startswith("/old/"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/old") :])
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server over a temporary directory: (base URL, directory)."""
    root = tmp_path_factory.mktemp("site")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()
    thread.join()


def _sha(data: bytes) -> str:
    """Hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    """A tar.gz holding the given files."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_single_file_with_checksum(site: tuple[str, Path], tmp_path: Path) -> None:
    """A plain file is streamed and checked against its #sha256= fragment."""
    base, root = site
    data = b"\x08\x01onnx-bytes" * 1000
    (root / "model.onnx").write_bytes(data)
    dest = tmp_path / "models"
    download(f"{base}/model.onnx#sha256={_sha(data)}", dest, DownloadOptions())
    assert (dest / "model.onnx").read_bytes() == data
    assert [p.name for p in dest.iterdir()] == ["model.onnx"]


def test_redirects_are_followed(site: tuple[str, Path], tmp_path: Path) -> None:
    """A 302 to the real location works as users expect from release URLs."""
    base, root = site
    (root / "moved.bin").write_bytes(b"moved")
    download(f"{base}/old/moved.bin", tmp_path / "m", DownloadOptions())
    assert (tmp_path / "m" / "moved.bin").read_bytes() == b"moved"


def test_tar_gz_is_unpacked_and_its_manifest_verified(
    site: tuple[str, Path], tmp_path: Path
) -> None:
    """The archive is checked, unpacked, removed; its SHA256SUMS is verified."""
    base, root = site
    weights = b"weights" * 100
    payload = _tar_gz(
        {
            "model/model.joblib": weights,
            "SHA256SUMS": f"{_sha(weights)}  model/model.joblib\n".encode(),
        }
    )
    (root / "bundle.tar.gz").write_bytes(payload)
    dest = tmp_path / "models"
    download(f"{base}/bundle.tar.gz#sha256={_sha(payload)}", dest, DownloadOptions())
    assert (dest / "model" / "model.joblib").read_bytes() == weights
    assert sorted(p.name for p in dest.iterdir()) == ["SHA256SUMS", "model"]


def test_zip_is_unpacked(site: tuple[str, Path], tmp_path: Path) -> None:
    """A zip archive lands unpacked."""
    base, root = site
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("model.onnx", b"onnx")
        zf.writestr("config/labels.txt", "setosa\n")
    (root / "bundle.zip").write_bytes(buffer.getvalue())
    dest = tmp_path / "models"
    download(f"{base}/bundle.zip", dest, DownloadOptions())
    assert (dest / "config" / "labels.txt").read_text() == "setosa\n"
    assert not (dest / "bundle.zip").exists()


def test_manifest_mismatch_inside_archive_leaves_nothing(
    site: tuple[str, Path], tmp_path: Path
) -> None:
    """A SHA256SUMS mismatch after unpacking removes everything, DEST included."""
    base, root = site
    payload = _tar_gz(
        {"model.onnx": b"tampered", "SHA256SUMS": f"{'1' * 64}  model.onnx\n".encode()}
    )
    (root / "bad.tar.gz").write_bytes(payload)
    dest = tmp_path / "models"
    with pytest.raises(StorageError, match=r"checksum mismatch for model\.onnx"):
        download(f"{base}/bad.tar.gz", dest, DownloadOptions())
    assert not dest.exists()


def test_archive_with_path_traversal_is_refused(site: tuple[str, Path], tmp_path: Path) -> None:
    """A malicious archive is refused and writes nothing outside (or inside) DEST."""
    base, root = site
    (root / "evil.tar.gz").write_bytes(_tar_gz({"ok.txt": b"ok", "../../escape.txt": b"pwned"}))
    dest = tmp_path / "a" / "models"
    dest.mkdir(parents=True)
    with pytest.raises(StorageError, match=r"unsafe member in evil\.tar\.gz"):
        download(f"{base}/evil.tar.gz", dest, DownloadOptions())
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "a" / "escape.txt").exists()


def test_checksum_mismatch_is_a_clear_error(site: tuple[str, Path], tmp_path: Path) -> None:
    """A wrong fragment names the file, the expected and the actual digest."""
    base, root = site
    (root / "m.bin").write_bytes(b"actual")
    uri = f"{base}/m.bin#sha256={'f' * 64}"
    with pytest.raises(StorageError) as info:
        download(uri, tmp_path / "models", DownloadOptions())
    assert str(info.value) == (
        f"{uri}: checksum mismatch for m.bin: expected {'f' * 64}, got {_sha(b'actual')}"
    )
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize(
    ("path", "cause"),
    [("/missing.onnx", "not found (HTTP 404)"), ("/private/m.onnx", "access denied (HTTP 403)")],
)
def test_http_errors(site: tuple[str, Path], tmp_path: Path, path: str, cause: str) -> None:
    """404 and 403 become one-line causes naming the URI."""
    base, _ = site
    with pytest.raises(StorageError) as info:
        download(f"{base}{path}", tmp_path / "models", DownloadOptions())
    assert str(info.value).startswith(f"{base}{path}: {cause}")
    assert not (tmp_path / "models").exists()


def test_connection_refused_is_a_clear_error(tmp_path: Path) -> None:
    """Nothing listening: the cause says the request failed."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StorageError, match="request failed: ConnectError"):
        download(f"http://127.0.0.1:{port}/m.onnx", tmp_path / "models", DownloadOptions())
