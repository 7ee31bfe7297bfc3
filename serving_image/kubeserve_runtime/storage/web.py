"""``https://`` (and ``http://``) sources: one file streamed with httpx.

Redirects are followed; connection failures are retried by httpx's transport. The file
name is the last path segment of the URL (``model`` when there is none). Archives are
unpacked by the downloader afterwards. An optional ``Authorization: Bearer`` token comes
from ``HTTPS_BEARER_TOKEN`` (environment or Secret directory).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import httpx

from kubeserve_runtime.storage.errors import StorageError
from kubeserve_runtime.storage.options import DownloadOptions
from kubeserve_runtime.storage.uri import SourceURI

TIMEOUT = httpx.Timeout(30.0, read=300.0)
_CHUNK = 1 << 20


def file_name(source: SourceURI) -> str:
    """The local file name for a URL: its last path segment."""
    name = PurePosixPath(unquote(source.path)).name
    return name if name and name not in (".", "..") and "\\" not in name else "model"


def fetch(source: SourceURI, staging: Path, options: DownloadOptions) -> Path:
    """Stream the URL into staging and return the file written."""
    target = staging / file_name(source)
    headers = {}
    token = options.get("HTTPS_BEARER_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    transport = httpx.HTTPTransport(retries=3)
    try:
        with (
            httpx.Client(transport=transport, timeout=TIMEOUT, follow_redirects=True) as client,
            client.stream("GET", source.without_fragment, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise StorageError(source.raw, http_cause(response.status_code))
            with target.open("wb") as out:
                for chunk in response.iter_bytes(_CHUNK):
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise StorageError(source.raw, f"request failed: {type(exc).__name__}: {exc}") from exc
    return target


def http_cause(status: int) -> str:
    """A one-line cause for a non-200 HTTP status."""
    if status == 404:
        return "not found (HTTP 404)"
    if status in (401, 403):
        return f"access denied (HTTP {status}); check the token or the object's permissions"
    return f"unexpected HTTP status {status}"
