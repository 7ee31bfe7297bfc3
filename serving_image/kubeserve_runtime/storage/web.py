"""``https://`` (and ``http://``) sources: one file streamed with httpx.

Redirects are followed; connection failures are retried by httpx's transport. The file
name is the last path segment of the URL (``model`` when there is none). Archives are
unpacked by the downloader afterwards. An optional ``Authorization: Bearer`` token comes
from ``HTTPS_BEARER_TOKEN`` (environment or Secret directory).

Credentials never travel in clear: every request that carries an ``Authorization``
header (a bearer token, or Basic auth from ``user:pass@`` in the URI) must go to an
``https://`` URL, or the download stops before anything is sent. This holds for
loopback too (a token on plain http is a configuration mistake wherever it points), and
for the Cloud Storage client, which shares this module's ``client``. A redirect to
another origin (https to http included) drops the header, as httpx does, so the token
never follows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import httpx

from kubeserve_runtime.storage.chunk import CHUNK_BYTES
from kubeserve_runtime.storage.errors import StorageError
from kubeserve_runtime.storage.options import DownloadOptions
from kubeserve_runtime.storage.quota import Quota
from kubeserve_runtime.storage.uri import SourceURI

TIMEOUT = httpx.Timeout(30.0, read=300.0)
TOKEN_VARIABLE = "HTTPS_BEARER_TOKEN"


class CredentialsInClear(Exception):
    """A request with credentials was about to go out over plain http."""


def client(credential: str, headers: dict[str, str] | None = None) -> httpx.Client:
    """An httpx client (retries, timeouts, redirects) that refuses to send credentials
    over plain http; ``credential`` names where they come from, for the error."""

    def refuse_in_clear(request: httpx.Request) -> None:
        if request.url.scheme != "https" and "authorization" in request.headers:
            raise CredentialsInClear(
                f"refusing to send credentials ({credential}) over plain http to "
                f"{request.url.host}:{request.url.port or 80}; use an https:// URL, "
                "or drop the credentials for a public source"
            )

    return httpx.Client(
        transport=httpx.HTTPTransport(retries=3),
        timeout=TIMEOUT,
        follow_redirects=True,
        headers=headers,
        event_hooks={"request": [refuse_in_clear]},
    )


def bearer(token: str | None) -> dict[str, str]:
    """The Authorization header for a bearer token (none without a token)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def file_name(source: SourceURI) -> str:
    """The local file name for a URL: its last path segment."""
    name = PurePosixPath(unquote(source.path)).name
    return name if name and name not in (".", "..") and "\\" not in name else "model"


def fetch(source: SourceURI, staging: Path, options: DownloadOptions, quota: Quota) -> Path:
    """Stream the URL into staging and return the file written."""
    target = staging / file_name(source)
    token = options.get(TOKEN_VARIABLE)
    credential = TOKEN_VARIABLE if token else "user:password in the URI"
    with (
        failures(source),
        client(credential, bearer(token)) as http,
        http.stream("GET", source.without_fragment) as response,
    ):
        save(response, target, source, quota)
    return target


def save(response: httpx.Response, target: Path, source: SourceURI, quota: Quota) -> None:
    """Write a 200 response's body to target, charging the quota per chunk; a
    Content-Length that cannot fit is refused before reading. The body is counted as
    decoded (a gzip Content-Encoding is undone), so a compressed bomb stops too."""
    if response.status_code != 200:
        raise StorageError(source.raw, http_cause(response.status_code))
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit():
        quota.require(int(declared), f"{target.name} ({declared} bytes)")
    with target.open("wb") as out:
        for chunk in response.iter_bytes(CHUNK_BYTES):
            quota.charge(len(chunk), f"downloading {target.name}")
            out.write(chunk)


@contextmanager
def failures(source: SourceURI) -> Iterator[None]:
    """Turn transport failures, URLs httpx cannot use and refused clear-text credentials
    into StorageError."""
    try:
        yield
    except CredentialsInClear as exc:
        raise StorageError(source.raw, str(exc)) from exc
    except httpx.InvalidURL as exc:
        raise StorageError(source.raw, f"invalid URL: {exc}") from exc
    except httpx.HTTPError as exc:
        raise StorageError(source.raw, f"request failed: {type(exc).__name__}: {exc}") from exc


def http_cause(status: int) -> str:
    """A one-line cause for a non-200 HTTP status."""
    if status == 404:
        return "not found (HTTP 404)"
    if status in (401, 403):
        return f"access denied (HTTP {status}); check the token or the object's permissions"
    return f"unexpected HTTP status {status}"
