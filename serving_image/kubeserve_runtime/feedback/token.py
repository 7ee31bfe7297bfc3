"""Feedback tokens: a JWT (HS256, PyJWT) naming one prediction, signed with a shared key.

Limits first: a token proves that a replica holding the key issued it, unchanged, and
when it expires; it hides nothing (the claims are base64, readable by whoever holds the
response) and it is a bearer value (anyone holding it may send feedback for it once per
replica; see ``seen``). Keys come from a file, one per line (blank and ``#`` lines
skipped, as the auth token file): the first key signs, every key verifies, so a key is
rotated by listing the new one first, waiting one token lifetime, then removing the old
one. The file is read at start; a change needs a restart (a rollout). Keys shorter than
32 bytes are refused (RFC 7518 asks for at least the hash size for HS256).

Claims: ``m`` model, ``r`` revision, ``v`` variant, ``k`` task (``c`` classification,
``r`` regression), ``p`` the predicted values (flattened first output), ``iat`` issue
time, ``exp`` expiry (JWT NumericDate, seconds), ``jti`` a random id (duplicates). The
expiry is checked without leeway; the issue time is not checked, so clocks of replicas
may differ by seconds without refusing fresh tokens.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt

from kubeserve_runtime.auth import read_tokens

ALGORITHM = "HS256"
MIN_KEY_BYTES = 32
Task = Literal["classification", "regression"]
_TASK_CODE: dict[str, Task] = {"c": "classification", "r": "regression"}
_CODE_OF: dict[Task, str] = {"classification": "c", "regression": "r"}
_REQUIRED = ["m", "r", "v", "k", "p", "iat", "exp", "jti"]


@dataclass(frozen=True, slots=True)
class Prediction:
    """What a verified token says about the prediction it was issued for."""

    model: str
    revision: str
    variant: str
    task: Task
    values: tuple[Any, ...]
    issued: float
    expires: float
    token_id: str


class TokenInvalid(Exception):
    """A token that does not verify; ``reason`` is one of malformed, forged, expired."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def read_keys(path: Path) -> tuple[bytes, ...]:
    """Return the keys of a key file (first = signing key); refuse short or no keys."""
    keys = read_tokens(path)
    if not keys:
        raise ValueError(f"feedback key file {path} holds no keys")
    short = [i + 1 for i, key in enumerate(keys) if len(key) < MIN_KEY_BYTES]
    if short:
        raise ValueError(
            f"feedback key file {path}: key(s) {short} are shorter than {MIN_KEY_BYTES} bytes"
        )
    return keys


class TokenSigner:
    """Issues and verifies tokens with one key set."""

    def __init__(self, keys: tuple[bytes, ...]) -> None:
        if not keys:
            raise ValueError("at least one feedback key is needed")
        self._keys = keys

    def issue(
        self,
        model: str,
        revision: str,
        variant: str,
        task: Task,
        values: list[Any],
        now: float,
        ttl: float,
    ) -> str:
        """Return a signed token for one prediction, valid from ``now`` for ``ttl`` s."""
        claims = {
            "m": model,
            "r": revision,
            "v": variant,
            "k": _CODE_OF[task],
            "p": values,
            "iat": int(now),
            "exp": round(now + ttl, 3),
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(claims, self._keys[0], algorithm=ALGORITHM, headers={"typ": None})

    def verify(self, token: str) -> Prediction:
        """Return the prediction a token names; raise TokenInvalid with the reason."""
        claims: dict[str, Any] | None = None
        for key in self._keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    options={"require": _REQUIRED, "verify_iat": False},
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise TokenInvalid("expired", "the token has expired") from None
            except jwt.InvalidTokenError as exc:
                raise TokenInvalid("malformed", f"not a feedback token: {exc}") from None
        if claims is None:
            raise TokenInvalid(
                "forged", "the token's signature does not match any key of this service"
            )
        return _prediction(claims)


def _prediction(claims: dict[str, Any]) -> Prediction:
    """Turn verified claims into a Prediction (shape checked: a signed token is ours)."""
    values, task = claims["p"], _TASK_CODE.get(claims["k"])
    texts = [claims[name] for name in ("m", "r", "v", "jti")]
    if not isinstance(values, list) or task is None or not all(isinstance(t, str) for t in texts):
        raise TokenInvalid("malformed", "the token's claims are not a feedback token's")
    return Prediction(
        model=claims["m"],
        revision=claims["r"],
        variant=claims["v"],
        task=task,
        values=tuple(values),
        issued=float(claims["iat"]),
        expires=float(claims["exp"]),
        token_id=claims["jti"],
    )
