"""The JWT access policy (``kubeserve_runtime.jwtauth.decide``), its parsing helpers, and
the runtime settings each auth mode needs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from kubeserve_runtime.jwtauth import AccessPolicy, decide, service_account_of
from kubeserve_runtime.settings import RuntimeSettings

SA = AccessPolicy(mode="serviceAccount", allow=("apps/web", "batch/*"))


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("system:serviceaccount:apps:web", ("apps", "web")),
        ("system:serviceaccount:apps:", None),
        ("system:serviceaccount::web", None),
        ("system:serviceaccount:apps:web:extra", None),
        ("system:node:worker-1", None),
        ("alice", None),
    ],
)
def test_service_account_subjects_are_parsed_strictly(
    subject: str, expected: tuple[str, str] | None
) -> None:
    """Only ``system:serviceaccount:<ns>:<name>`` names a ServiceAccount."""
    assert service_account_of(subject) == expected


@pytest.mark.parametrize(
    ("subject", "allowed"),
    [
        ("system:serviceaccount:apps:web", True),
        ("system:serviceaccount:batch:anything", True),
        ("system:serviceaccount:apps:worker", False),
        ("system:serviceaccount:web:apps", False),
        ("system:node:apps", False),
    ],
)
def test_service_account_policy_allows_listed_accounts_and_namespaces(
    subject: str, allowed: bool
) -> None:
    """``ns/name`` allows one account, ``ns/*`` a whole namespace, nothing else passes."""
    result = decide(SA, {"sub": subject})
    assert (result[0] if result else None) == (None if allowed else "subject")


@pytest.mark.parametrize(
    ("claims", "refusal"),
    [
        ({"sub": "alice", "groups": ["ml", "ops"], "email_verified": True}, None),
        ({"sub": "alice", "groups": "ml", "email_verified": True}, None),
        ({"sub": "alice", "groups": ["ops"], "email_verified": True}, "claims"),
        ({"sub": "alice", "email_verified": True}, "claims"),
        ({"sub": "alice", "groups": ["ml"], "email_verified": False}, "claims"),
        ({"sub": "alice", "groups": ["ml"], "email_verified": {"x": 1}}, "claims"),
        ({"sub": "mallory", "groups": ["ml"], "email_verified": True}, "subject"),
    ],
)
def test_oidc_policy_checks_subjects_then_required_claims(
    claims: dict[str, Any], refusal: str | None
) -> None:
    """A claim matches by equality, list membership, or JSON text for booleans."""
    policy = AccessPolicy(
        mode="oidc",
        allow=("alice",),
        required_claims={"groups": "ml", "email_verified": "true"},
    )
    result = decide(policy, claims)
    assert (result[0] if result else None) == refusal


def test_oidc_policy_without_allow_accepts_any_subject() -> None:
    """An empty allow list in oidc mode: the audience alone decides."""
    assert decide(AccessPolicy(mode="oidc"), {"sub": "anyone"}) is None


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"auth_mode": "tokens"}, "auth mode tokens needs auth_token_file"),
        ({"auth_mode": "oidc", "auth_issuer": "https://x"}, "needs auth_audience"),
        ({"auth_mode": "oidc", "auth_audience": "a"}, "needs auth_issuer"),
        ({"auth_mode": "serviceAccount", "auth_audience": "a"}, "needs auth_allow"),
        (
            {"auth_mode": "serviceAccount", "auth_audience": "a", "auth_allow": "ns/a,web"},
            "namespace/name or namespace/*: ['web']",
        ),
        ({"auth_mode": "oidc", "auth_required_claims": "{not json"}, "not a JSON object"),
    ],
)
def test_runtime_settings_refuse_incomplete_auth(settings: dict[str, Any], expected: str) -> None:
    """The runtime refuses to start without what its auth mode needs, naming it."""
    with pytest.raises(ValidationError, match=re.escape(expected)):
        RuntimeSettings.model_validate({"model_name": "iris", **settings})


def test_runtime_settings_read_allow_lists_as_json_or_commas() -> None:
    """Flags and env give lists as JSON (what the operator renders) or comma-separated."""
    base = {"model_name": "iris", "auth_mode": "serviceAccount", "auth_audience": "a"}
    as_json = RuntimeSettings.model_validate({**base, "auth_allow": '["ns/a","ns/*"]'})
    as_commas = RuntimeSettings.model_validate({**base, "auth_allow": "ns/a, ns/*"})
    assert as_json.auth_allow == as_commas.auth_allow == ["ns/a", "ns/*"]
    assert RuntimeSettings(model_name="iris").effective_auth_mode is None
