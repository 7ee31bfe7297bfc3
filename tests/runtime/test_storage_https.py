"""https:// and http:// downloads from real HTTP servers on loopback (plain, and TLS
with a test CA): single files, archives, checksums, HTTP errors, and credentials (bearer
tokens and user:password only over https, never shown in errors or logs)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from kubeserve_runtime.storage import DownloadOptions, StorageError, download

TOKEN = "bearer-secret-token"
Seen = list[tuple[str, str | None]]


class _Handler(SimpleHTTPRequestHandler):
    """Serves a directory and records (path, Authorization) of every request.

    /private/... answers 403; /bearer/... needs ``Bearer TOKEN`` (401 otherwise);
    /old/... redirects to /...; /away/... redirects to the same path on ``elsewhere``;
    /stream/N/NAME sends N zero bytes with no Content-Length (ended by closing);
    /gzip/N/NAME sends N zero bytes as ``Content-Encoding: gzip`` (a small body).
    """

    def __init__(self, *args: Any, seen: Seen, elsewhere: str = "", **kwargs: Any) -> None:
        self.seen, self.elsewhere = seen, elsewhere
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        """Serve, refuse or redirect."""
        authorization = self.headers.get("Authorization")
        self.seen.append((self.path, authorization))
        if self.path.startswith("/private/"):
            self.send_error(403, "Forbidden")
        elif self.path.startswith("/bearer/") and authorization != f"Bearer {TOKEN}":
            self.send_error(401, "Unauthorized")
        elif self.path.startswith("/old/"):
            self._redirect(self.path.removeprefix("/old"))
        elif self.path.startswith("/away/"):
            self._redirect(self.elsewhere + self.path.removeprefix("/away"))
        elif self.path.startswith(("/stream/", "/gzip/")):
            _, how, size, _ = self.path.split("/", 3)
            body = bytes(int(size))
            self.send_response(200)
            if how == "gzip":
                body = gzip.compress(body)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.path = self.path.removeprefix("/bearer")
            super().do_GET()

    def _redirect(self, location: str) -> None:
        """Answer 302 to location."""
        self.send_response(302)
        self.send_header("Location", location)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory both servers serve."""
    return tmp_path_factory.mktemp("site")


@pytest.fixture(scope="module")
def seen() -> Seen:
    """(path, Authorization) of every request either server received."""
    return []


@pytest.fixture(scope="module")
def site(serve_http: Callable[..., str], root: Path, seen: Seen) -> tuple[str, Path]:
    """A plain-http loopback server over a temporary directory: (base URL, directory)."""
    handler = functools.partial(_Handler, directory=str(root), seen=seen)
    return serve_http(handler), root


@pytest.fixture(scope="module")
def tls_site(
    serve_http: Callable[..., str], site: tuple[str, Path], seen: Seen
) -> tuple[str, Path]:
    """The same directory over https (test CA); /away/ redirects to the plain site."""
    base, root = site
    handler = functools.partial(_Handler, directory=str(root), seen=seen, elsewhere=base)
    return serve_http(handler, tls=True), root


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


def test_bearer_token_goes_over_https(
    tls_site: tuple[str, Path], seen: Seen, trust_loopback_ca: Path, tmp_path: Path
) -> None:
    """HTTPS_BEARER_TOKEN is sent to an https URL (verified against the CA)."""
    base, root = tls_site
    (root / "private-model.onnx").write_bytes(b"onnx")
    options = DownloadOptions(config={"HTTPS_BEARER_TOKEN": TOKEN})
    download(f"{base}/bearer/private-model.onnx", tmp_path / "models", options)
    assert (tmp_path / "models" / "private-model.onnx").read_bytes() == b"onnx"
    assert ("/bearer/private-model.onnx", f"Bearer {TOKEN}") in seen


def test_bearer_token_is_never_sent_over_plain_http(
    site: tuple[str, Path], seen: Seen, tmp_path: Path
) -> None:
    """A token with an http:// URL stops the download before any request is made."""
    base, root = site
    (root / "clear.onnx").write_bytes(b"onnx")
    options = DownloadOptions(config={"HTTPS_BEARER_TOKEN": TOKEN})
    with pytest.raises(StorageError) as info:
        download(f"{base}/bearer/clear.onnx", tmp_path / "models", options)
    port = base.rsplit(":", 1)[1]
    assert str(info.value) == (
        f"{base}/bearer/clear.onnx: refusing to send credentials (HTTPS_BEARER_TOKEN) over "
        f"plain http to 127.0.0.1:{port}; use an https:// URL, or drop the credentials for "
        "a public source"
    )
    assert not [path for path, _ in seen if path == "/bearer/clear.onnx"]
    assert not (tmp_path / "models").exists()


def test_userinfo_is_never_sent_over_plain_http_nor_shown(
    site: tuple[str, Path], seen: Seen, tmp_path: Path
) -> None:
    """user:password@ in an http:// URL would go out as Basic auth: refused, and the
    password appears nowhere in the error."""
    base, root = site
    (root / "basic.onnx").write_bytes(b"onnx")
    uri = base.replace("://", "://alice:pass-secret@") + "/basic.onnx"
    with pytest.raises(StorageError) as info:
        download(uri, tmp_path / "models", DownloadOptions())
    message = str(info.value)
    assert message.startswith(f"{base.replace('://', '://REDACTED@')}/basic.onnx: refusing")
    assert "user:password in the URI" in message
    assert "pass-secret" not in message
    assert "alice" not in message
    assert not [path for path, _ in seen if path == "/basic.onnx"]


def test_redirect_from_https_to_http_drops_the_token(
    tls_site: tuple[str, Path], seen: Seen, trust_loopback_ca: Path, tmp_path: Path
) -> None:
    """The token reaches the https origin only; the http target of its redirect gets a
    request without it."""
    base, root = tls_site
    (root / "mirrored.onnx").write_bytes(b"onnx")
    options = DownloadOptions(config={"HTTPS_BEARER_TOKEN": TOKEN})
    download(f"{base}/away/mirrored.onnx", tmp_path / "models", options)
    assert (tmp_path / "models" / "mirrored.onnx").read_bytes() == b"onnx"
    assert [a for p, a in seen if p.endswith("mirrored.onnx")] == [f"Bearer {TOKEN}", None]


PRESIGNED = "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE&X-Amz-Signature=sig99"


def test_presigned_query_is_not_in_the_error(site: tuple[str, Path], tmp_path: Path) -> None:
    """A presigned URL's whole query is replaced in the error message."""
    base, _ = site
    with pytest.raises(StorageError) as info:
        download(f"{base}/gone.onnx{PRESIGNED}", tmp_path / "models", DownloadOptions())
    assert str(info.value) == f"{base}/gone.onnx?REDACTED: not found (HTTP 404)"


def test_command_logs_and_errors_never_show_presigned_queries(
    site: tuple[str, Path], tmp_path: Path
) -> None:
    """The real download process (httpx logs every request URL at INFO): neither its log
    lines nor its error line hold the signature or the credential id."""
    base, root = site
    (root / "signed.onnx").write_bytes(b"onnx")
    runs = [
        subprocess.run(
            [sys.executable, "-m", "kubeserve_runtime.cli", "download", uri, str(dest)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        for uri, dest in (
            (f"{base}/signed.onnx{PRESIGNED}", tmp_path / "ok"),
            (f"{base}/gone.onnx{PRESIGNED}", tmp_path / "missing"),
        )
    ]
    assert [run.returncode for run in runs] == [0, 1]
    assert (tmp_path / "ok" / "signed.onnx").read_bytes() == b"onnx"
    assert f"GET {base}/signed.onnx?REDACTED" in runs[0].stderr
    assert f"downloaded {base}/signed.onnx?REDACTED into" in runs[0].stderr
    assert runs[1].stderr.splitlines()[-1] == (
        f"kubeserve-runtime download: error: {base}/gone.onnx?REDACTED: not found (HTTP 404)"
    )
    for run in runs:
        output = run.stdout + run.stderr
        assert "sig99" not in output
        assert "AKIDEXAMPLE" not in output


def test_url_httpx_cannot_use_is_a_clear_error(tmp_path: Path) -> None:
    """A URL with a control character is one redacted line, not a traceback."""
    with pytest.raises(StorageError) as info:
        download("http://127.0.0.1/m\x01.onnx?sig=abc", tmp_path / "models", DownloadOptions())
    assert str(info.value).startswith("http://127.0.0.1/m\x01.onnx?REDACTED: invalid URL: ")
    assert not (tmp_path / "models").exists()


def _limited(limit: int, **config: str) -> DownloadOptions:
    """Options with a model size limit."""
    return DownloadOptions(config=config, max_bytes=limit)


def _limit_message(what: str, limit: int, used: int = 0) -> str:
    """The cause a model over its size limit gets."""
    return (
        f"{what} would take the model past its size limit of {limit} bytes "
        f"(KUBESERVE_MAX_MODEL_BYTES; {used} bytes already on the volume)"
    )


def test_download_over_the_limit_is_refused_from_its_length(
    site: tuple[str, Path], tmp_path: Path
) -> None:
    """A Content-Length that cannot fit fails before the body is read; nothing is left."""
    base, root = site
    (root / "big.bin").write_bytes(b"b" * 2000)
    dest = tmp_path / "models"
    with pytest.raises(StorageError) as info:
        download(f"{base}/big.bin", dest, _limited(1000))
    assert str(info.value) == f"{base}/big.bin: {_limit_message('big.bin (2000 bytes)', 1000)}"
    assert not dest.exists()
    download(f"{base}/big.bin", dest, _limited(2000))
    assert (dest / "big.bin").stat().st_size == 2000


@pytest.mark.parametrize("how", ["stream", "gzip"])
def test_body_over_the_limit_stops_while_streaming(
    site: tuple[str, Path], tmp_path: Path, how: str
) -> None:
    """No Content-Length, or a gzip Content-Encoding that inflates 8 MiB from a few KiB:
    bytes are counted as written, and the download stops at the limit."""
    base, _ = site
    dest = tmp_path / "models"
    dest.mkdir()
    (dest / "kept.txt").write_text("from before")
    uri = f"{base}/{how}/{8 << 20}/zeros.bin"
    with pytest.raises(StorageError) as info:
        download(uri, dest, _limited(1 << 20))
    assert str(info.value).startswith(f"{uri}: downloading zeros.bin would take the model past")
    assert sorted(p.name for p in dest.iterdir()) == ["kept.txt"]


def _bomb() -> bytes:
    """A tar.gz of a 16 MiB file of zeros (about 16 KiB)."""
    return _tar_gz({"zeros.bin": bytes(16 << 20)})


def test_archive_bomb_is_refused_and_leaves_nothing(site: tuple[str, Path], tmp_path: Path) -> None:
    """The unpacked size counts, with the archive still on the volume beside it."""
    base, root = site
    payload = _bomb()
    (root / "bomb.tar.gz").write_bytes(payload)
    dest = tmp_path / "models"
    with pytest.raises(StorageError) as info:
        download(f"{base}/bomb.tar.gz", dest, _limited(1 << 20))
    what = f"unpacking bomb.tar.gz (at least {16 << 20} bytes)"
    assert str(info.value) == f"{base}/bomb.tar.gz: {_limit_message(what, 1 << 20, len(payload))}"
    assert not dest.exists()


def test_archive_and_contents_must_fit_together(site: tuple[str, Path], tmp_path: Path) -> None:
    """A limit of archive + contents passes (the archive is gone afterwards); one byte
    less fails."""
    base, root = site
    payload = _bomb()
    (root / "fits.tar.gz").write_bytes(payload)
    exact = len(payload) + (16 << 20)
    with pytest.raises(StorageError, match=r"unpacking fits\.tar\.gz"):
        download(f"{base}/fits.tar.gz", tmp_path / "short", _limited(exact - 1))
    download(f"{base}/fits.tar.gz", tmp_path / "ok", _limited(exact))
    assert [p.name for p in (tmp_path / "ok").iterdir()] == ["zeros.bin"]
