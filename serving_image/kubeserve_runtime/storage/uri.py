"""Parsing of model URIs: scheme, location and the optional ``#sha256=`` fragment.

The fragment never reaches the remote side; it only states the expected digest of the
single file the URI names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from kubeserve_runtime.storage.errors import StorageError

SCHEMES = ("s3", "gs", "https", "http", "pvc", "file")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SourceURI:
    """A parsed model URI."""

    raw: str
    scheme: str
    netloc: str
    path: str
    sha256: str | None

    @property
    def without_fragment(self) -> str:
        """The URI as sent to the remote side (no fragment)."""
        return self.raw.split("#", 1)[0]

    @property
    def key(self) -> str:
        """The path without its leading slash: the object key or prefix for buckets."""
        return self.path.lstrip("/")


def parse_uri(raw: str) -> SourceURI:
    """Parse and validate a model URI, raising StorageError on anything unusable."""
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = scheme or "(none)"
        raise StorageError(
            raw, f"unknown URI scheme {shown!r}; supported: {', '.join(s + '://' for s in SCHEMES)}"
        )
    if scheme in ("s3", "gs", "pvc") and not parts.netloc:
        noun = "PVC name" if scheme == "pvc" else "bucket name"
        raise StorageError(raw, f"missing {noun} (expected {scheme}://NAME/path)")
    if scheme in ("http", "https") and not parts.netloc:
        raise StorageError(raw, "missing host")
    if scheme == "file" and parts.netloc not in ("", "localhost"):
        raise StorageError(raw, "file:// URIs must be absolute paths (file:///path)")
    return SourceURI(
        raw=raw,
        scheme=scheme,
        netloc=parts.netloc,
        path=unquote(parts.path) if scheme in ("file", "pvc") else parts.path,
        sha256=_parse_fragment(raw, parts.fragment),
    )


def _parse_fragment(raw: str, fragment: str) -> str | None:
    """Return the expected sha256 from a ``sha256=HEX`` fragment, if any."""
    if not fragment:
        return None
    name, _, value = fragment.partition("=")
    if name.lower() != "sha256":
        # The fragment itself is not quoted: nothing says it is not a secret.
        raise StorageError(raw, "unsupported URI fragment; only #sha256=HEX is known")
    digest = value.strip().lower()
    if not _SHA256.match(digest):
        raise StorageError(raw, "the #sha256= fragment must be 64 hexadecimal characters")
    return digest
