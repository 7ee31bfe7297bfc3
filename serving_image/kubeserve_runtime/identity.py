"""Who sent the request being handled: its authenticated identity, per request.

Limits first: the identity lives in a context variable, so it is visible only to code
running in the request's own asyncio task (the REST request, the gRPC call) and in what
that task awaits; a model call in an inference thread, or a batch that mixes the rows
of several callers, does not see it. Read it where the request is handled (the
transports, the data plane's async methods, a payload logger called from them). It is
``None`` when the runtime has no auth, and for tokens from the token file, which name
no one (``Identity.subject`` is then ``None``).

How to read it: ``current_identity()`` -> ``Identity | None``. The transports set it
(``set_identity``) right after the Authorization header is checked and before the
request reaches the data plane; every request sets it afresh, so nothing leaks from
one request to the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller.

    ``subject`` is the token's ``sub`` claim (``system:serviceaccount:<ns>:<name>`` for
    a Kubernetes ServiceAccount), or ``None`` for a token-file token; ``issuer`` its
    ``iss``; ``claims`` the whole verified claim set (empty for a token-file token).
    """

    subject: str | None
    issuer: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


TOKEN_FILE_CALLER = Identity(subject=None)
"""The identity of any token from the token file: known to hold a token, no name."""

_current: ContextVar[Identity | None] = ContextVar("kubeserve_identity", default=None)


def current_identity() -> Identity | None:
    """The identity of the request handled by the calling task, or None."""
    return _current.get()


def current_subject() -> str | None:
    """The subject of the request handled by the calling task, or None."""
    identity = _current.get()
    return identity.subject if identity is not None else None


def set_identity(identity: Identity | None) -> None:
    """Record the identity of the request the calling task handles (transports only)."""
    _current.set(identity)
