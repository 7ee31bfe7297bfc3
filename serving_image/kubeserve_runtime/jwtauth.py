"""Identity-based auth: JWT bearer tokens from Kubernetes ServiceAccounts or an OIDC issuer.

Limits first: verification is offline (signature against the issuer's JWKS, then
``iss``, ``aud``, ``exp``, ``nbf``, with ``CLOCK_SKEW_SECONDS`` of leeway), so a
ServiceAccount token stays valid until it expires even after its pod or ServiceAccount
is deleted (kube-apiserver's TokenReview would notice; this runtime does not ask it).
Tokens without ``exp``, ``iss``, ``aud`` or ``sub`` are refused, which also refuses the
legacy, never-expiring Secret-based ServiceAccount tokens. Only asymmetric algorithms
are accepted, and only the one the issuer's key declares (or implies): never ``none``,
never HMAC. PyJWT does all the cryptography.

401 (``Unauthorized``) means the token proves nothing: missing, malformed, signed by
no key of the issuer, expired, or for another issuer or audience. 403 (``Forbidden``)
means the token is valid but its holder is not allowed here (``decide``). Messages name
the failed check and never echo the token.

The policy (``AccessPolicy``): ``serviceAccount`` mode allows ``namespace/name`` and
``namespace/*`` entries, matched against the ``sub`` claim
``system:serviceaccount:<namespace>:<name>``; ``oidc`` mode allows exact ``sub`` values
(an empty list allows every subject). ``required_claims`` must all hold: a claim equals
the wanted text, or is a list that contains it; booleans and numbers compare as their
JSON text (``email_verified: "true"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
import orjson

from kubeserve_runtime.auth import bearer_token
from kubeserve_runtime.errors import Forbidden, NotReady, Unauthorized
from kubeserve_runtime.identity import Identity
from kubeserve_runtime.jwks import IssuerKeys, KeysUnavailable

CLOCK_SKEW_SECONDS = 30
REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub")
SA_SUBJECT_PREFIX = "system:serviceaccount:"
JwtMode = Literal["serviceAccount", "oidc"]


@dataclass(frozen=True)
class AccessPolicy:
    """Who may call, once the token is valid."""

    mode: JwtMode
    allow: tuple[str, ...] = ()
    required_claims: Mapping[str, str] = field(default_factory=dict)


def service_account_of(subject: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of a ServiceAccount token's subject, else None."""
    if not subject.startswith(SA_SUBJECT_PREFIX):
        return None
    namespace, sep, name = subject[len(SA_SUBJECT_PREFIX) :].partition(":")
    return (namespace, name) if sep and namespace and name and ":" not in name else None


def _claim_holds(value: Any, wanted: str) -> bool:
    """Whether one claim value satisfies a required value."""
    if isinstance(value, list):
        return any(_claim_holds(item, wanted) for item in value)
    if isinstance(value, str):
        return value == wanted
    if isinstance(value, bool | int | float):
        return bool(orjson.dumps(value).decode() == wanted)
    return False


def decide(policy: AccessPolicy, claims: Mapping[str, Any]) -> tuple[str, str] | None:
    """Return None when the policy allows the verified claims, else (reason, message)."""
    subject = str(claims.get("sub", ""))
    if policy.mode == "serviceAccount":
        account = service_account_of(subject)
        if account is None:
            return "subject", "the token is not a Kubernetes ServiceAccount token"
        namespace, name = account
        if f"{namespace}/{name}" not in policy.allow and f"{namespace}/*" not in policy.allow:
            return "subject", f"ServiceAccount {namespace}/{name} is not allowed to call this model"
    elif policy.allow and subject not in policy.allow:
        return "subject", f"subject {subject!r} is not allowed to call this model"
    for claim, wanted in policy.required_claims.items():
        if claim not in claims:
            return "claims", f"the token has no {claim!r} claim, which this model requires"
        if not _claim_holds(claims[claim], wanted):
            return "claims", f"the token's {claim!r} claim does not allow calling this model"
    return None


_FAILURES: Sequence[tuple[type[jwt.InvalidTokenError], str, str]] = (
    (jwt.ExpiredSignatureError, "expired", "the token has expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid", "the token is not valid yet (nbf/iat)"),
    (jwt.InvalidAudienceError, "audience", "the token is not for this audience"),
    (jwt.InvalidIssuerError, "issuer", "the token is from another issuer"),
    (jwt.MissingRequiredClaimError, "malformed", "the token lacks a required claim"),
    (jwt.InvalidSignatureError, "signature", "the token's signature does not verify"),
    (jwt.InvalidAlgorithmError, "algorithm", "the token's algorithm does not match its key"),
)
_SIGNED = frozenset({"expired", "not_yet_valid", "audience", "issuer"})
"""Failures PyJWT reports only after the signature verified: the subject is genuine."""


def _refusal(exc: jwt.InvalidTokenError, token: str) -> Unauthorized:
    """The 401 for a PyJWT failure; names the subject when the signature had verified."""
    reason, message = next(
        ((r, m) for kind, r, m in _FAILURES if isinstance(exc, kind)),
        ("malformed", "the token is not a valid JWT"),
    )
    if isinstance(exc, jwt.InvalidAudienceError | jwt.MissingRequiredClaimError):
        message = f"{message}: {exc}"
    subject = None
    if reason in _SIGNED:
        unverified = jwt.decode(token, options={"verify_signature": False})
        subject = str(unverified.get("sub")) if unverified.get("sub") else None
    return Unauthorized(message, reason, subject)


class JwtAuth:
    """Verifies JWT bearer tokens against one issuer and applies an access policy."""

    def __init__(self, keys: IssuerKeys, audience: str, policy: AccessPolicy) -> None:
        self._keys = keys
        self._audience = audience
        self._policy = policy

    async def start(self) -> None:
        """Fetch the issuer's discovery document and keys (raises KeysUnavailable)."""
        await self._keys.start()

    async def close(self) -> None:
        """Release the key fetcher."""
        await self._keys.close()

    async def authenticate(self, header: str | None) -> Identity:
        """Return the caller's identity; raise Unauthorized (401) or Forbidden (403)."""
        token = bearer_token(header)
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("the token is not a valid JWT", "malformed") from exc
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("the token's 'kid' header is not a string", "malformed")
        try:
            issuer = self._keys.issuer
        except KeysUnavailable as exc:
            raise NotReady("the token issuer's keys are not loaded yet") from exc
        key = await self._keys.key(kid)
        if key is None:
            raise Unauthorized(
                "the token is signed by a key the issuer does not publish", "unknown_key"
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=self._audience,
                issuer=issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.InvalidTokenError as exc:
            raise _refusal(exc, token) from exc
        subject = str(claims["sub"])
        refused = decide(self._policy, claims)
        if refused is not None:
            raise Forbidden(refused[1], refused[0], subject)
        return Identity(subject=subject, issuer=issuer, claims=claims)
