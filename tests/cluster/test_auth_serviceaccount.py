"""serviceAccount-mode auth: a real runtime process verifies real ServiceAccount tokens.

The control plane's kube-apiserver issues the tokens (TokenRequest API, as ``kubectl
create token`` does) and serves its OIDC discovery document and JWKS. The runtime reads
both exactly as it does in a pod: with a token of its own ServiceAccount (which has no
RoleBinding: the default ``system:service-account-issuer-discovery`` binding for all
ServiceAccounts is what lets it read them) and the cluster CA. Only the API server's
address differs: loopback here, ``kubernetes.default.svc`` in a pod.

Checked: the allowed ServiceAccount's token gets 200 (the access log names it), another
ServiceAccount's 403, a token for another audience 401, and an expired token 401 naming
its subject. TokenRequest refuses lifetimes under 10 minutes, so the expired token is
signed with the control plane's own ServiceAccount signing key (the local cluster's
key file; the test is skipped on a cluster whose key it cannot read), under the kid the
API server publishes: the runtime accepts its signature and refuses it as expired.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from kubernetes import client

from kubeserve.devcluster import controlplane
from kubeserve_runtime.testing import GatedModel, RuntimeProcess, wait_until

AUDIENCE = "kubeserve-test-iris"
ROW = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP64", "data": [0.0]}]}


def token(api: client.ApiClient, namespace: str, account: str, audience: str | None) -> str:
    """A token for a ServiceAccount from the TokenRequest API (10 minutes, the minimum)."""
    spec: dict[str, Any] = {"expirationSeconds": 600}
    if audience is not None:
        spec["audiences"] = [audience]
    response = client.CoreV1Api(api).create_namespaced_service_account_token(
        account, namespace, {"spec": spec}
    )
    return str(response.status.token)


@dataclass
class Setup:
    """The running runtime and what the test needs to call it."""

    server: RuntimeProcess
    namespace: str
    issuer: str
    jwks: dict[str, Any]


@pytest.fixture
def setup(api_client: client.ApiClient, namespace: str, tmp_path: Path) -> Iterator[Setup]:
    """ServiceAccounts caller, stranger and runtime; the runtime process in
    serviceAccount mode allowing only caller, fetching keys as the runtime account."""
    core = client.CoreV1Api(api_client)
    for name in ("caller", "stranger", "runtime"):
        core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    own = tmp_path / "runtime-token"
    own.write_text(token(api_client, namespace, "runtime", None))
    config = api_client.configuration
    host, ca = config.host.rstrip("/"), config.ssl_ca_cert
    trust = ssl.create_default_context(cafile=ca)
    with httpx.Client(verify=trust, headers={"Authorization": f"Bearer {own.read_text()}"}) as web:
        issuer = web.get(f"{host}/.well-known/openid-configuration").raise_for_status().json()
        jwks = web.get(f"{host}/openid/v1/jwks").raise_for_status().json()
    model = GatedModel(tmp_path)
    args = (
        "--auth-mode",
        "serviceAccount",
        "--auth-audience",
        AUDIENCE,
        "--auth-allow",
        f"{namespace}/caller",
        "--auth-discovery-url",
        f"{host}/.well-known/openid-configuration",
        "--auth-jwks-url",
        f"{host}/openid/v1/jwks",
        "--auth-ca-file",
        str(ca),
        "--auth-fetch-token-file",
        str(own),
        "--log-sample-rate",
        "1",
    )
    with RuntimeProcess(model.model_dir, "iris", *args, grpc=False) as server:
        yield Setup(server, namespace, issuer["issuer"], jwks)


def infer(server: RuntimeProcess, bearer: str) -> httpx.Response:
    """One V2 infer request."""
    return httpx.post(
        f"{server.url}/v2/models/iris/infer",
        json=ROW,
        headers={"Authorization": f"Bearer {bearer}"},
    )


def audit_lines(server: RuntimeProcess) -> list[dict[str, Any]]:
    """The runtime's audit log lines."""
    lines = [json.loads(line) for line in server.log.splitlines() if line.startswith("{")]
    return [e for e in lines if e.get("logger") == "kubeserve_runtime.audit"]


def test_allowed_service_account_is_served_others_are_refused(
    api_client: client.ApiClient, setup: Setup
) -> None:
    """Allowed account: 200 and named in the access log; another account: 403; a token
    for another audience: 401. Refusals are audited with their subject and reason."""
    ns, server = setup.namespace, setup.server
    allowed = infer(server, token(api_client, ns, "caller", AUDIENCE))
    assert allowed.status_code == 200, allowed.text
    access = wait_until(
        lambda: [
            e
            for e in (json.loads(x) for x in server.log.splitlines() if x.startswith("{"))
            if e.get("logger") == "kubeserve_runtime.access" and e["status"] == 200
        ],
        "the access line",
    )
    assert access[-1]["subject"] == f"system:serviceaccount:{ns}:caller"

    stranger = infer(server, token(api_client, ns, "stranger", AUDIENCE))
    assert stranger.status_code == 403
    assert stranger.json()["error"] == (
        f"ServiceAccount {ns}/stranger is not allowed to call this model"
    )
    misaddressed = infer(server, token(api_client, ns, "caller", "another-audience"))
    assert misaddressed.status_code == 401
    assert "not for this audience" in misaddressed.json()["error"]
    default_audience = infer(server, token(api_client, ns, "caller", None))
    assert default_audience.status_code == 401  # a token for the API server is no key here

    audit = wait_until(lambda: audit_lines(server)[2:] and audit_lines(server), "3 audit lines")
    assert [(e["status"], e["reason"], e["subject"]) for e in audit] == [
        (403, "subject", f"system:serviceaccount:{ns}:stranger"),
        (401, "audience", f"system:serviceaccount:{ns}:caller"),
        (401, "audience", f"system:serviceaccount:{ns}:caller"),
    ]
    assert {e["client"] for e in audit} == {"127.0.0.1"}


def cluster_signing_key(kubeconfig: Path) -> ec.EllipticCurvePrivateKey:
    """The local control plane's ServiceAccount signing key (skip the test without it)."""
    path = controlplane.Layout(kubeconfig.parent).pem("sa-key")
    if not path.is_file():
        pytest.skip(f"the cluster's signing key is not readable here ({path})")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def test_expired_token_signed_by_the_cluster_key_is_401_naming_its_subject(
    kubeconfig: Path, setup: Setup
) -> None:
    """An expired token with a genuine signature: 401 'expired', audited with its subject."""
    key = cluster_signing_key(kubeconfig)
    public: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    (published,) = [
        k for k in setup.jwks["keys"] if (k.get("x"), k.get("y")) == (public["x"], public["y"])
    ]
    subject = f"system:serviceaccount:{setup.namespace}:caller"
    now = int(time.time())
    claims = {
        "iss": setup.issuer,
        "sub": subject,
        "aud": [AUDIENCE],
        "iat": now - 7200,
        "nbf": now - 7200,
        "exp": now - 3600,
    }
    header = {"kid": published["kid"]}
    expired = jwt.encode(claims, key, "ES256", headers=header)
    response = infer(setup.server, expired)
    assert response.status_code == 401
    assert response.json()["error"] == "the token has expired"
    fresh = jwt.encode({**claims, "exp": now + 600}, key, "ES256", headers=header)
    assert infer(setup.server, fresh).status_code == 200  # the same token, unexpired: served
    audit = wait_until(lambda: audit_lines(setup.server), "the audit line")
    assert [(e["status"], e["reason"], e["subject"]) for e in audit] == [(401, "expired", subject)]
