"""The auth gate every transport calls, and the audit trail of what it refuses.

Limits first: the audit trail is log lines and a counter, nothing more: no signing,
no separate sink. Every refused request (401 or 403) writes one line on the
``kubeserve_runtime.audit`` logger, whatever ``log_sample_rate`` says, and counts
``kubeserve_auth_refused_total{model, version, protocol, reason, status}``. The line
holds the reason (a fixed word: ``missing``, ``malformed``, ``invalid``,
``unknown_key``, ``signature``, ``algorithm``, ``expired``, ``not_yet_valid``,
``audience``, ``issuer``, ``subject``, ``claims``), the message the client got, the
subject when it is known (a valid token refused by policy, or an expired or misaddressed
token whose signature verified), the client address, the protocol and what was asked
for (method and path, or the gRPC method). The token itself is never written.

``AuthGate.admit`` sets the request's identity (``kubeserve_runtime.identity``) and
returns it; ``build_gate`` makes the gate the settings ask for (None when auth is off).
"""

from __future__ import annotations

import logging
from typing import Protocol

from kubeserve_runtime import contract
from kubeserve_runtime.errors import Forbidden, Unauthorized
from kubeserve_runtime.identity import Identity, set_identity
from kubeserve_runtime.metrics import RuntimeMetrics
from kubeserve_runtime.settings import RuntimeSettings

audit_logger = logging.getLogger("kubeserve_runtime.audit")


class Authenticator(Protocol):
    """What a mode provides: the token file (``auth``) or JWTs (``jwtauth``)."""

    async def start(self) -> None:
        """Get ready (fetch keys); raise when that cannot be done."""

    async def close(self) -> None:
        """Release what ``start`` acquired."""

    async def authenticate(self, header: str | None) -> Identity:
        """The caller of an ``Authorization`` header; Unauthorized or Forbidden if none."""


class AuthGate:
    """Authenticates requests, records their identity, audits every refusal."""

    def __init__(self, authenticator: Authenticator, metrics: RuntimeMetrics) -> None:
        self.authenticator = authenticator
        self._metrics = metrics

    async def admit(
        self, header: str | None, protocol: str, client: str | None, target: str
    ) -> Identity:
        """Return the caller's identity (also set on the request's context), or raise."""
        try:
            identity = await self.authenticator.authenticate(header)
        except (Unauthorized, Forbidden) as exc:
            set_identity(None)
            self._metrics.auth_refused(protocol, exc.reason, exc.status_code)
            audit_logger.warning(
                "request refused",
                extra={
                    "fields": {
                        "status": exc.status_code,
                        "reason": exc.reason,
                        "error": exc.message,
                        "subject": exc.subject,
                        "client": client,
                        "protocol": protocol,
                        "target": target,
                    }
                },
            )
            raise
        set_identity(identity)
        return identity


def build_gate(settings: RuntimeSettings, metrics: RuntimeMetrics) -> AuthGate | None:
    """The gate of the configured auth mode, or None when requests need no token."""
    mode = settings.effective_auth_mode
    if mode is None:
        return None
    if mode == "tokens":
        from kubeserve_runtime.auth import TokenAuth

        assert settings.auth_token_file is not None  # the settings' validator ensures it
        return AuthGate(TokenAuth(settings.auth_token_file), metrics)
    from kubeserve_runtime.jwks import IssuerKeys, IssuerSource
    from kubeserve_runtime.jwtauth import AccessPolicy, JwtAuth

    assert settings.auth_audience is not None  # the settings' validator ensures it
    jwks: str | None
    if mode == "serviceAccount":
        discovery = settings.auth_discovery_url or (
            contract.IN_CLUSTER_API + contract.DISCOVERY_PATH
        )
        jwks = settings.auth_jwks_url or contract.IN_CLUSTER_API + contract.SA_JWKS_PATH
    else:
        issuer = (settings.auth_issuer or "").rstrip("/")
        discovery = settings.auth_discovery_url or issuer + contract.DISCOVERY_PATH
        jwks = settings.auth_jwks_url
    source = IssuerSource(
        discovery_url=discovery,
        jwks_url=jwks,
        issuer=settings.auth_issuer,
        ca_file=settings.auth_ca_file,
        token_file=settings.auth_fetch_token_file,
        min_refresh_seconds=settings.auth_jwks_min_refresh_seconds,
    )
    policy = AccessPolicy(
        mode="serviceAccount" if mode == "serviceAccount" else "oidc",
        allow=tuple(settings.auth_allow),
        required_claims=dict(settings.auth_required_claims),
    )
    return AuthGate(JwtAuth(IssuerKeys(source), settings.auth_audience, policy), metrics)
