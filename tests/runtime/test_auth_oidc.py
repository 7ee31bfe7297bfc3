"""OIDC-mode auth on a real runtime process against a real (test) OIDC issuer process.

The issuer (``kubeserve_runtime.testissuer``) is a tiny loopback HTTP server that
publishes a discovery document and a JWKS the test controls; the test signs tokens with
its own RSA keys. Checked on REST and gRPC: 200 for an allowed subject with the required
claim, 403 for a valid token whose subject or claims the policy refuses, 401 for
missing, expired, misaddressed, unknown-key, forged and algorithm-confused tokens; every
refusal is in the audit log (reason, client, subject when known) and in
``kubeserve_auth_refused_total``; the access log names the subject; a key the issuer
adds later is fetched on its first unknown ``kid``, and unknown ``kid``s within the
refresh interval cause no fetch at all. The payload log events of a served request name
the subject too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from kubeserve_runtime.testing import RuntimeProcess, wait_until
from kubeserve_runtime.testissuer import SigningKey, TestIssuer

ROW = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}
AUDIENCE = "iris-api"


@pytest.fixture(scope="module")
def first_key() -> SigningKey:
    """The key the issuer publishes from the start."""
    return SigningKey("key-1")


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory, first_key: SigningKey) -> Iterator[TestIssuer]:
    """The test issuer process, publishing ``first_key``."""
    with TestIssuer(tmp_path_factory.mktemp("issuer")) as running:
        running.publish(first_key)
        yield running


def oidc_args(issuer: TestIssuer, *extra: str) -> tuple[str, ...]:
    """Runtime flags for OIDC mode against the test issuer."""
    return (
        "--auth-mode",
        "oidc",
        "--auth-issuer",
        issuer.url,
        "--auth-audience",
        AUDIENCE,
        "--auth-allow",
        "alice,bob",
        "--auth-required-claims",
        '{"groups": "ml"}',
        *extra,
    )


@pytest.fixture(scope="module")
def server(sklearn_dir: Path, issuer: TestIssuer) -> Iterator[RuntimeProcess]:
    """The iris model in OIDC mode, every request logged (access and payload lines),
    unknown kids refetched at once."""
    args = oidc_args(
        issuer,
        "--auth-jwks-min-refresh-seconds",
        "0",
        "--log-sample-rate",
        "1",
        "--payload-logger",
        json.dumps({"sinks": [{"stdout": {}}]}),
    )
    with RuntimeProcess(sklearn_dir, "iris", *args) as running:
        yield running


def infer(server: RuntimeProcess, token: str | None) -> httpx.Response:
    """One V2 infer request with an optional bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(f"{server.url}/v2/models/iris/infer", json=ROW, headers=headers)


def log_lines(server: RuntimeProcess, logger: str) -> list[dict[str, Any]]:
    """The server's JSON log lines of one logger."""
    lines = [json.loads(line) for line in server.log.splitlines() if line.startswith("{")]
    return [e for e in lines if e.get("logger") == logger]


def refused_count(server: RuntimeProcess, reason: str, protocol: str = "v2") -> float:
    """``kubeserve_auth_refused_total`` for one reason and protocol, scraped now."""
    text = httpx.get(server.metrics_url).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("kubeserve_auth_refused_total{") and (
            f'reason="{reason}"' in line and f'protocol="{protocol}"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_allowed_subject_with_the_claim_is_served_and_named_in_the_access_log(
    server: RuntimeProcess, issuer: TestIssuer, first_key: SigningKey
) -> None:
    """alice in group ml: 200 on V2 and V1; the access line names her."""
    token = first_key.sign(issuer.claims("alice", aud=AUDIENCE, groups=["ml", "x"]))
    assert infer(server, token).status_code == 200
    v1 = httpx.post(
        f"{server.url}/v1/models/iris:predict",
        json={"instances": [[1, 2, 3, 4]]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert v1.status_code == 200
    access = wait_until(
        lambda: [e for e in log_lines(server, "kubeserve_runtime.access") if e["status"] == 200],
        "the access lines of the served requests",
    )
    assert {e["subject"] for e in access} == {"alice"}
    payloads = wait_until(
        lambda: [e["event"] for e in log_lines(server, "kubeserve_runtime.payload")],
        "the payload events of the served requests",
    )
    assert {event["subject"] for event in payloads} == {"alice"}


@pytest.mark.parametrize(
    ("subject", "extra", "reason", "message"),
    [
        ("carol", {"groups": ["ml"]}, "subject", "subject 'carol' is not allowed"),
        ("bob", {}, "claims", "has no 'groups' claim"),
        ("bob", {"groups": "finance"}, "claims", "'groups' claim does not allow"),
    ],
)
def test_valid_token_refused_by_policy_is_403_and_audited(
    server: RuntimeProcess,
    issuer: TestIssuer,
    first_key: SigningKey,
    subject: str,
    extra: dict[str, Any],
    reason: str,
    message: str,
) -> None:
    """A valid token whose subject or claims the policy refuses: 403, audit line, metric."""
    before = refused_count(server, reason)
    token = first_key.sign(issuer.claims(subject, aud=AUDIENCE, **extra))
    response = infer(server, token)
    assert response.status_code == 403
    assert message in response.json()["error"]
    assert token not in server.log
    audit = wait_until(
        lambda: [
            e
            for e in log_lines(server, "kubeserve_runtime.audit")
            if e["subject"] == subject and e["reason"] == reason and message in e["error"]
        ],
        "the audit line",
    )
    assert audit[-1]["status"] == 403
    assert audit[-1]["client"] == "127.0.0.1"
    assert audit[-1]["target"] == "POST /v2/models/iris/infer"
    assert refused_count(server, reason) == before + 1


def forged(issuer: TestIssuer, first_key: SigningKey) -> str:
    """Claims of alice signed by another key that claims to be the issuer's key-1."""
    return SigningKey("key-1").sign(issuer.claims("alice", aud=AUDIENCE, groups=["ml"]))


def hmac_confused(issuer: TestIssuer, first_key: SigningKey) -> str:
    """alice's claims signed HS256 under the issuer's RSA ``kid``: an HMAC token must never
    be checked against a public key, whatever secret it was made with."""
    secret = "a-secret-long-enough-for-hmac-sha256-keys"
    claims = issuer.claims("alice", aud=AUDIENCE, groups=["ml"])
    return jwt.encode(claims, secret, "HS256", headers={"kid": first_key.kid})


@pytest.mark.parametrize(
    ("make", "reason", "message", "subject"),
    [
        (lambda i, k: None, "missing", "missing bearer token", None),
        (lambda i, k: "not-a-jwt", "malformed", "not a valid JWT", None),
        (
            lambda i, k: k.sign({**i.claims("alice", aud=AUDIENCE), "exp": 1_700_000_000}),
            "expired",
            "has expired",
            "alice",
        ),
        (
            lambda i, k: k.sign(i.claims("alice", aud="another-api")),
            "audience",
            "not for this audience",
            "alice",
        ),
        (
            lambda i, k: k.sign({**i.claims("alice", aud=AUDIENCE), "iss": "https://elsewhere"}),
            "issuer",
            "from another issuer",
            "alice",
        ),
        (
            lambda i, k: SigningKey("stranger").sign(i.claims("alice", aud=AUDIENCE)),
            "unknown_key",
            "key the issuer does not publish",
            None,
        ),
        (forged, "signature", "signature does not verify", None),
        (hmac_confused, "algorithm", "algorithm does not match", None),
        (
            lambda i, k: k.sign({"iss": i.url, "sub": "alice", "aud": AUDIENCE}),
            "malformed",
            "lacks a required claim",
            None,
        ),
    ],
)
def test_tokens_that_prove_nothing_are_401_and_audited(
    server: RuntimeProcess,
    issuer: TestIssuer,
    first_key: SigningKey,
    make: Any,
    reason: str,
    message: str,
    subject: str | None,
) -> None:
    """401 with the failed check named; the audit line has the subject only when the
    signature verified (expired or misaddressed tokens of a genuine caller)."""
    before = refused_count(server, reason)
    token = make(issuer, first_key)
    response = infer(server, token)
    assert response.status_code == 401
    assert message in response.json()["error"]
    assert response.headers["www-authenticate"] == 'Bearer realm="kubeserve"'
    audit = wait_until(
        lambda: [
            e
            for e in log_lines(server, "kubeserve_runtime.audit")
            if e["reason"] == reason and message in e["error"]
        ],
        "the audit line",
    )
    assert audit[-1]["subject"] == subject
    assert audit[-1]["status"] == 401
    assert refused_count(server, reason) == before + 1
    if token is not None:
        assert token not in server.log


def test_grpc_takes_the_same_decisions(
    server: RuntimeProcess, issuer: TestIssuer, first_key: SigningKey
) -> None:
    """gRPC: served for alice, PERMISSION_DENIED for carol, UNAUTHENTICATED when expired;
    the refusals are counted under protocol grpc."""
    client = grpcclient.InferenceServerClient(url=server.grpc_target)
    tensor = grpcclient.InferInput("x", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.ones((1, 4)))

    def call(subject: str, **extra: Any) -> Any:
        token = first_key.sign(issuer.claims(subject, aud=AUDIENCE, groups=["ml"], **extra))
        return client.infer("iris", [tensor], headers={"authorization": f"Bearer {token}"})

    try:
        assert call("alice").as_numpy("output-0") is not None
        with pytest.raises(InferenceServerException) as denied:
            call("carol")
        assert denied.value.status() == "StatusCode.PERMISSION_DENIED"
        with pytest.raises(InferenceServerException) as expired:
            call("alice", exp=1_700_000_000)
        assert expired.value.status() == "StatusCode.UNAUTHENTICATED"
    finally:
        client.close()
    assert refused_count(server, "subject", "grpc") >= 1
    assert refused_count(server, "expired", "grpc") >= 1
    audit = log_lines(server, "kubeserve_runtime.audit")
    assert any(e["protocol"] == "grpc" and e["target"] == "ModelInfer" for e in audit)


def test_a_key_added_by_rotation_is_fetched_on_its_first_token(
    server: RuntimeProcess, issuer: TestIssuer, first_key: SigningKey
) -> None:
    """The issuer publishes a new key; the first token signed with it makes the runtime
    refetch the JWKS and succeeds."""
    rotated = SigningKey("key-2")
    token = rotated.sign(issuer.claims("bob", aud=AUDIENCE, groups=["ml"]))
    fetched = issuer.fetches()
    issuer.publish(first_key, rotated)
    assert infer(server, token).status_code == 200
    assert issuer.fetches() == fetched + 1
    assert infer(server, token).status_code == 200
    assert issuer.fetches() == fetched + 1  # held now: no further fetch


def test_unknown_kids_within_the_refresh_interval_cause_no_fetch(
    sklearn_dir: Path, issuer: TestIssuer, first_key: SigningKey
) -> None:
    """With an hour between refreshes, tokens of a key published after the start are
    refused as unknown and never make the runtime fetch again."""
    args = oidc_args(issuer, "--auth-jwks-min-refresh-seconds", "3600")
    with RuntimeProcess(sklearn_dir, "iris", *args) as limited:
        fetched = issuer.fetches()
        late = SigningKey("key-late")
        issuer.publish(first_key, late)
        token = late.sign(issuer.claims("alice", aud=AUDIENCE, groups=["ml"]))
        for _ in range(5):
            response = infer(limited, token)
            assert response.status_code == 401
            assert "key the issuer does not publish" in response.json()["error"]
        assert issuer.fetches() == fetched
        assert refused_count(limited, "unknown_key") == 5
    issuer.publish(first_key)


def test_a_missing_discovery_document_stops_the_runtime_with_a_reason(
    sklearn_dir: Path, issuer: TestIssuer
) -> None:
    """The issuer answers 404 for the discovery document: the process exits 1 at once
    (a 4xx does not pass with retries) and says what it could not fetch."""
    args = oidc_args(issuer, "--auth-discovery-url", f"{issuer.url}/no-such-document")
    proc = RuntimeProcess(sklearn_dir, "iris", *args)
    proc.start(wait_ready=False)
    assert proc.process is not None
    assert proc.process.wait(timeout=60) == 1
    assert "cannot fetch the token issuer's keys" in proc.log
    assert "/no-such-document answered 404" in proc.log
