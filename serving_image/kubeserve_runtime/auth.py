"""Optional bearer-token auth: tokens come from a mounted file, one per line.

Limits: the file is re-read only when its stat signature (inode, size, mtime, ctime)
changes, and that is checked at most every ``RECHECK_SECONDS``, so a revoked token keeps
working for up to that long. Blank lines and lines whose first non-blank character is
``#`` are ignored; every other line, stripped, is one token.

Reloading fails closed: whatever the file holds now is the whole truth. An emptied file
means no valid tokens (every request is refused), and so does a deleted or unreadable
file, which is also logged as an error each time it happens. A Kubernetes Secret update
swaps the file atomically, so a rotation never passes through "missing". Only at start is
an empty or missing file an error (the server refuses to start), since a server that
refuses everything from its first second is a mistake in the pod spec.

Tokens are compared in constant time. Health endpoints never ask. A token-file token
names no one: the request's identity has no subject (``identity.TOKEN_FILE_CALLER``).
``bearer_token`` reads the ``Authorization`` header for every mode (``jwtauth`` too).
"""

from __future__ import annotations

import hmac
import logging
import os
from pathlib import Path
from time import monotonic

from kubeserve_runtime.errors import Unauthorized
from kubeserve_runtime.identity import TOKEN_FILE_CALLER, Identity

RECHECK_SECONDS = 5.0

log = logging.getLogger(__name__)

Signature = tuple[int, int, int, int]


def parse_tokens(text: str) -> tuple[bytes, ...]:
    """Return the tokens listed in token-file text (blank and ``#`` lines skipped)."""
    stripped = (line.strip() for line in text.splitlines())
    return tuple(line.encode() for line in stripped if line and not line.startswith("#"))


def read_tokens(path: Path) -> tuple[bytes, ...]:
    """Return the tokens listed in a token file."""
    return parse_tokens(path.read_text(encoding="utf-8"))


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (Unauthorized otherwise)."""
    if not header:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)", "missing")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("the Authorization header must be 'Bearer <token>'", "malformed")
    return token


def _signature(stat: os.stat_result) -> Signature:
    """What identifies one version of the file: a rewrite or a swap changes it."""
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


class TokenAuth:
    """Checks ``Authorization: Bearer <token>`` values against the token file."""

    def __init__(self, path: Path, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self._path = path
        self._recheck = recheck_seconds
        self._signature: Signature | None = _signature(path.stat())
        self._tokens = read_tokens(path)
        if not self._tokens:
            raise ValueError(f"auth token file {path} holds no tokens")
        self._checked = monotonic()

    def _refresh(self) -> None:
        """Re-read the file when it changed (at most every recheck interval)."""
        now = monotonic()
        if now - self._checked < self._recheck:
            return
        self._checked = now
        try:
            signature = _signature(self._path.stat())
            if signature == self._signature:
                return
            tokens = read_tokens(self._path)
        except (OSError, UnicodeDecodeError) as exc:
            if self._signature is not None:
                log.error(
                    "auth token file %s cannot be read (%s): every token is revoked and "
                    "every request is refused until it is back",
                    self._path,
                    exc.strerror if isinstance(exc, OSError) and exc.strerror else exc,
                )
            self._tokens, self._signature = (), None
            return
        if not tokens:
            log.error("auth token file %s holds no tokens: every request is refused", self._path)
        else:
            log.info("auth token file %s reloaded: %d token(s)", self._path, len(tokens))
        self._tokens, self._signature = tokens, signature

    def check(self, header: str | None) -> None:
        """Raise Unauthorized unless the header carries a known bearer token."""
        given = bearer_token(header).encode()
        self._refresh()
        if not any(hmac.compare_digest(given, known) for known in self._tokens):
            raise Unauthorized("invalid bearer token", "invalid")

    async def start(self) -> None:
        """Nothing to fetch: the file was read when this object was made."""

    async def close(self) -> None:
        """Nothing to release."""

    async def authenticate(self, header: str | None) -> Identity:
        """``check`` as the transports call every authenticator."""
        self.check(header)
        return TOKEN_FILE_CALLER
