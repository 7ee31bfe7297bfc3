"""gs:// downloads through the Cloud Storage JSON API.

No Cloud Storage emulator can run here, so these tests use a FAKE: a loopback HTTP
server speaking the few JSON API calls the client makes (object metadata, media
download, paginated listing), reached through STORAGE_EMULATOR_HOST as the Google
libraries do. Test names say ``fake_json_api``. Reads with a token go to the fake over
https (test CA); a token is never sent to it over plain http.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from kubeserve_runtime.storage import DownloadOptions, StorageError, download

OBJECTS = {
    "public": {
        "iris/v1/model.onnx": b"onnx",
        "iris/v1/labels/names.txt": b"setosa\n",
        "iris/v1/extra.bin": b"x",
        "iris/v10/model.onnx": b"other",
    }
}
TOKEN = "ya29.test-token"
SEEN: list[tuple[str, str | None]] = []
"""(path, Authorization) of every request the fake received."""


class _FakeJsonApi(BaseHTTPRequestHandler):
    """Answers GET /storage/v1/b/B/o[/NAME][?alt=media|prefix=&pageToken=]; 1 item per page."""

    def do_GET(self) -> None:
        """Serve metadata, media or a listing page."""
        SEEN.append((self.path, self.headers.get("Authorization")))
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        parts = url.path.split("/")  # '', storage, v1, b, BUCKET, o, [NAME]
        bucket = OBJECTS.get(unquote(parts[4]))
        if self.headers.get("Authorization", f"Bearer {TOKEN}") != f"Bearer {TOKEN}":
            self._send(401, b'{"error": "unauthorized"}')
        elif bucket is None:
            self._send(404, b'{"error": "no such bucket"}')
        elif len(parts) == 7:
            name = unquote(parts[6])
            if name not in bucket:
                self._send(404, b'{"error": "no such object"}')
            elif query.get("alt") == ["media"]:
                self._send(200, bucket[name])
            else:
                self._send(200, json.dumps({"name": name}).encode())
        else:
            prefix = query.get("prefix", [""])[0]
            names = sorted(n for n in bucket if n.startswith(prefix))
            start = int(query.get("pageToken", ["0"])[0])
            page: dict[str, Any] = {"items": [{"name": n} for n in names[start : start + 1]]}
            if start + 1 < len(names):
                page["nextPageToken"] = str(start + 1)
            self._send(200, json.dumps(page).encode())

    def _send(self, status: int, body: bytes) -> None:
        """Write a response."""
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@pytest.fixture(scope="module")
def emulator_host(serve_http: Callable[..., str]) -> str:
    """The fake JSON API on loopback over plain http, as host:port (anonymous reads)."""
    return serve_http(_FakeJsonApi).removeprefix("http://")


@pytest.fixture(scope="module")
def tls_emulator(serve_http: Callable[..., str]) -> str:
    """The fake JSON API over https with the test CA, as a URL (for token reads)."""
    return serve_http(_FakeJsonApi, tls=True)


def _options(host: str, token: str | None = None) -> DownloadOptions:
    """Options pointing at the fake."""
    config = {"STORAGE_EMULATOR_HOST": host}
    if token:
        config["GOOGLE_OAUTH_ACCESS_TOKEN"] = token
    return DownloadOptions(config=config)


def test_prefix_download_follows_pages_against_fake_json_api(
    tls_emulator: str, trust_loopback_ca: Path, tmp_path: Path
) -> None:
    """Every object under prefix/ is fetched across pages, with the token over https;
    prefix10/ is not."""
    dest = tmp_path / "models"
    before = len(SEEN)
    download("gs://public/iris/v1", dest, _options(tls_emulator, TOKEN))
    assert {auth for _, auth in SEEN[before:]} == {f"Bearer {TOKEN}"}
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["extra.bin", "labels/names.txt", "model.onnx"]
    assert (dest / "model.onnx").read_bytes() == b"onnx"


def test_single_object_against_fake_json_api(emulator_host: str, tmp_path: Path) -> None:
    """A name that is an object downloads just that object, anonymously."""
    dest = tmp_path / "models"
    download("gs://public/iris/v1/labels/names.txt", dest, _options(emulator_host))
    assert [p.name for p in dest.iterdir()] == ["names.txt"]


@pytest.mark.parametrize(
    ("uri", "token", "cause"),
    [
        ("gs://nope/iris", None, "bucket 'nope' does not exist"),
        ("gs://public/iris/v9", None, "no object 'iris/v9' and no objects under 'iris/v9/'"),
        ("gs://public/iris/v1/model.onnx", "wrong", "access denied (HTTP 401)"),
    ],
)
def test_errors_against_fake_json_api(
    tls_emulator: str,
    trust_loopback_ca: Path,
    tmp_path: Path,
    uri: str,
    token: str | None,
    cause: str,
) -> None:
    """Missing bucket, missing object and a refused token are one-line causes."""
    with pytest.raises(StorageError) as info:
        download(uri, tmp_path / "models", _options(tls_emulator, token))
    assert str(info.value).startswith(f"{uri}: {cause}")
    assert not (tmp_path / "models").exists()


def test_token_is_never_sent_to_a_plain_http_fake_json_api(
    emulator_host: str, tmp_path: Path
) -> None:
    """GOOGLE_OAUTH_ACCESS_TOKEN with an http emulator: refused before any request."""
    before = len(SEEN)
    with pytest.raises(StorageError) as info:
        download("gs://public/iris/v1", tmp_path / "models", _options(emulator_host, TOKEN))
    assert str(info.value) == (
        "gs://public/iris/v1: refusing to send credentials (GOOGLE_OAUTH_ACCESS_TOKEN) over "
        f"plain http to {emulator_host}; use an https:// URL, or drop the credentials for a "
        "public source"
    )
    assert SEEN[before:] == []
    assert not (tmp_path / "models").exists()


def test_object_over_the_limit_against_fake_json_api(emulator_host: str, tmp_path: Path) -> None:
    """Media downloads are charged to the model size limit like https ones."""
    options = DownloadOptions(config={"STORAGE_EMULATOR_HOST": emulator_host}, max_bytes=3)
    with pytest.raises(StorageError) as info:
        download("gs://public/iris/v1/model.onnx", tmp_path / "models", options)
    assert str(info.value).startswith(
        "gs://public/iris/v1/model.onnx: model.onnx (4 bytes) would take the model past its "
        "size limit of 3 bytes"
    )
    assert not (tmp_path / "models").exists()
