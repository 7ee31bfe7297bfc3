"""Optional bearer-token auth: tokens come from a mounted file, one per line.

Blank lines and ``#`` comments are ignored. The file is re-read when its mtime changes
(checked at most every few seconds), so a rotated Kubernetes Secret takes effect without
a restart. Tokens are compared in constant time. Health endpoints never ask.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from time import monotonic

from kubeserve_runtime.errors import Unauthorized

RECHECK_SECONDS = 5.0


def read_tokens(path: Path) -> tuple[bytes, ...]:
    """Return the tokens listed in a token file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(
        line.strip().encode() for line in lines if line.strip() and not line.startswith("#")
    )


class TokenAuth:
    """Checks ``Authorization: Bearer <token>`` values against the token file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime = path.stat().st_mtime_ns
        self._tokens = read_tokens(path)
        if not self._tokens:
            raise ValueError(f"auth token file {path} holds no tokens")
        self._checked = monotonic()

    def _refresh(self) -> None:
        """Re-read the file when it changed (at most every RECHECK_SECONDS)."""
        now = monotonic()
        if now - self._checked < RECHECK_SECONDS:
            return
        self._checked = now
        try:
            mtime = self._path.stat().st_mtime_ns
            if mtime != self._mtime:
                tokens = read_tokens(self._path)
                if tokens:
                    self._tokens, self._mtime = tokens, mtime
        except OSError:
            return

    def check(self, header: str | None) -> None:
        """Raise Unauthorized unless the header carries a known bearer token."""
        if not header:
            raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        self._refresh()
        given = token.strip().encode()
        if not any(hmac.compare_digest(given, known) for known in self._tokens):
            raise Unauthorized("invalid bearer token")
