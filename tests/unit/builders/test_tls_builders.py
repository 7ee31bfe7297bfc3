"""spec.tls in the builders: the pod mounts and points the runtime at the certificate,
probes and Service ports switch to HTTPS, cert-manager gets a Certificate, and the API
refuses half configurations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from kubeserve.api.v1alpha1 import InferenceService
from kubeserve.builders import build_children, url
from kubeserve.config import OperatorConfig
from kubeserve.plan import Backend, Mirror, TrafficPlan, Workload
from kubeserve_runtime import contract

INPUTS = Path(__file__).resolve().parents[1] / "golden" / "inputs"
PLAN = TrafficPlan(
    workloads=(Workload("predictor", "1a2b3c4d", 1, 1), Workload("predictor", "5e6f7a8b", 1, 1)),
    backends=(Backend("predictor", "1a2b3c4d", 80), Backend("predictor", "5e6f7a8b", 20)),
)


def load(name: str) -> dict[str, Any]:
    """An InferenceService input of the golden tests."""
    obj: dict[str, Any] = yaml.safe_load((INPUTS / f"{name}.yaml").read_text())
    return obj


def by_kind(built: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Children of one kind by name."""
    return {c["metadata"]["name"]: c for c in built if c["kind"] == kind}


def children(tls: dict[str, Any], config: OperatorConfig | None = None) -> list[dict[str, Any]]:
    """The children of the iris example with ``spec.tls`` set, mid-canary."""
    obj = load("iris")
    obj["spec"]["tls"] = tls
    predictor = obj["spec"]["predictor"]
    predictors = {("predictor", "1a2b3c4d"): predictor, ("predictor", "5e6f7a8b"): predictor}
    return build_children(
        InferenceService.model_validate(obj), PLAN, predictors, config or OperatorConfig()
    )


def runtime_container(deployment: dict[str, Any]) -> dict[str, Any]:
    """The serving container of a Deployment."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_secret_name_is_mounted_and_served_over_https() -> None:
    """Every revision mounts the user's Secret and points the runtime at it; probes and
    Service ports say HTTPS; no Certificate is rendered."""
    built = children({"secretName": "iris-cert"})
    assert not by_kind(built, "Certificate")
    for deployment in by_kind(built, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        assert {
            "name": "tls",
            "secret": {
                "secretName": "iris-cert",
                "items": [
                    {"key": "tls.crt", "path": "tls.crt"},
                    {"key": "tls.key", "path": "tls.key"},
                ],
                "defaultMode": 0o440,
            },
        } in pod["volumes"]
        container = runtime_container(deployment)
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env[contract.ENV_TLS_CERT_FILE] == "/var/run/secrets/kubeserve/tls/tls.crt"
        assert env[contract.ENV_TLS_KEY_FILE] == "/var/run/secrets/kubeserve/tls/tls.key"
        assert contract.ENV_TLS_CLIENT_CA_FILE not in env
        assert {
            "name": "tls",
            "mountPath": "/var/run/secrets/kubeserve/tls",
            "readOnly": True,
        } in container["volumeMounts"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    for svc in by_kind(built, "Service").values():
        assert {p["appProtocol"] for p in svc["spec"]["ports"]} == {"https"}


def test_cert_manager_gets_a_certificate_for_the_service_and_host() -> None:
    """certManager renders an owned Certificate for the <isvc> Service's names and the
    route host; the pods mount the Secret it writes."""
    issuer = {"name": "internal", "kind": "ClusterIssuer"}
    built = children({"certManager": {"issuerRef": issuer}})
    (cert,) = by_kind(built, "Certificate").values()
    assert cert["apiVersion"] == "cert-manager.io/v1"
    assert cert["metadata"]["name"] == "iris"
    assert cert["metadata"]["ownerReferences"][0]["kind"] == "InferenceService"
    assert cert["spec"]["secretName"] == "iris-tls"
    assert cert["spec"]["issuerRef"] == {
        "name": "internal",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    ns = cert["metadata"]["namespace"]
    assert cert["spec"]["dnsNames"] == [
        "iris",
        f"iris.{ns}",
        f"iris.{ns}.svc",
        f"iris.{ns}.svc.cluster.local",
        f"iris.{ns}.example.com",
    ]
    for deployment in by_kind(built, "Deployment").values():
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["tls"]["secret"]["secretName"] == "iris-tls"
    none_mode = children(
        {"certManager": {"issuerRef": issuer}}, OperatorConfig(ingress_mode="none")
    )
    (cert,) = by_kind(none_mode, "Certificate").values()
    assert all(not name.endswith("example.com") for name in cert["spec"]["dnsNames"])


@pytest.mark.parametrize(
    ("client_ca", "source"),
    [
        ({"secretName": "clients"}, {"secret": {"secretName": "clients"}}),
        ({"configMapName": "clients", "key": "bundle.pem"}, {"configMap": {"name": "clients"}}),
    ],
)
def test_client_ca_is_mounted_for_mtls(client_ca: dict[str, str], source: dict[str, Any]) -> None:
    """clientCA (Secret or ConfigMap key) is mounted as ca.crt and named to the runtime."""
    built = children({"secretName": "iris-cert", "clientCA": client_ca})
    key = client_ca.get("key", "ca.crt")
    (kind,) = source
    expected = {**source[kind], "items": [{"key": key, "path": "ca.crt"}]}
    for deployment in by_kind(built, "Deployment").values():
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["client-ca"] == {"name": "client-ca", kind: expected}
        env = {e["name"]: e.get("value") for e in runtime_container(deployment)["env"]}
        assert env[contract.ENV_TLS_CLIENT_CA_FILE] == "/var/run/secrets/kubeserve/client-ca/ca.crt"


def test_custom_containers_get_the_files_and_https_probes_but_no_runtime_settings() -> None:
    """A custom container is the user's server: same mounts and probe scheme, no env."""
    obj = load("reco")
    obj["spec"]["tls"] = {"secretName": "reco-cert"}
    plan = TrafficPlan(
        workloads=(Workload("predictor", "0000aaaa", 1, 1), Workload("b", "0000bbbb", 1, 1)),
        backends=(Backend("predictor", "0000aaaa", 80), Backend("b", "0000bbbb", 20)),
    )
    predictors = {
        ("predictor", "0000aaaa"): obj["spec"]["predictor"],
        ("b", "0000bbbb"): obj["spec"]["variants"][0]["predictor"],
    }
    isvc = InferenceService.model_validate(obj)
    built = build_children(isvc, plan, predictors, OperatorConfig())
    custom = [
        c
        for d in by_kind(built, "Deployment").values()
        for c in d["spec"]["template"]["spec"]["containers"]
        if not d["spec"]["template"]["spec"].get("initContainers")
    ]
    assert custom
    for container in custom:
        names = {e["name"] for e in container.get("env", ())}
        assert contract.ENV_TLS_CERT_FILE not in names
        assert any(m["name"] == "tls" for m in container["volumeMounts"])
        assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_nginx_and_in_cluster_urls_follow_tls() -> None:
    """ingress-nginx is told the backends speak HTTPS (main, canary and mirror target);
    the in-cluster URL of the none mode is https."""
    plan = TrafficPlan(
        workloads=PLAN.workloads,
        backends=PLAN.backends,
        mirror=Mirror(Backend("predictor", "5e6f7a8b", 0), 100),
    )
    obj = load("iris")
    obj["spec"]["tls"] = {"secretName": "iris-cert"}
    isvc = InferenceService.model_validate(obj)
    predictor = obj["spec"]["predictor"]
    predictors = {("predictor", "1a2b3c4d"): predictor, ("predictor", "5e6f7a8b"): predictor}
    built = build_children(isvc, plan, predictors, OperatorConfig(ingress_mode="nginx"))
    ingresses = by_kind(built, "Ingress")
    assert len(ingresses) == 2
    for ingress in ingresses.values():
        annotations = ingress["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    mirror = ingresses["iris"]["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/mirror-target"
    ]
    assert mirror.startswith("https://")
    assert url(isvc, OperatorConfig(ingress_mode="none")).startswith("https://iris.")


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ({}, "tls needs exactly one of secretName or certManager"),
        (
            {"secretName": "a", "certManager": {"issuerRef": {"name": "i"}}},
            "tls needs exactly one of secretName or certManager",
        ),
        (
            {"secretName": "a", "clientCA": {"secretName": "b", "configMapName": "c"}},
            "clientCA needs exactly one of secretName or configMapName",
        ),
        (
            {"certManager": {"issuerRef": {"name": "i", "kind": "Vault"}}},
            "Issuer",
        ),
    ],
)
def test_half_configurations_are_refused(tls: dict[str, Any], message: str) -> None:
    """The models refuse what the CRD's CEL rules refuse, with the same message."""
    obj = load("iris")
    obj["spec"]["tls"] = tls
    with pytest.raises(ValidationError, match=message):
        InferenceService.model_validate(obj)


def test_gateway_ca_renders_a_backend_tls_policy_for_every_routed_service() -> None:
    """Gateway mode with gatewayCA: one BackendTLSPolicy naming each Service the route
    sends to (mirror target included), the CA ConfigMap and the certificate's hostname;
    none without gatewayCA or in other modes."""
    plan = TrafficPlan(
        workloads=PLAN.workloads,
        backends=(Backend("predictor", "1a2b3c4d", 100),),
        mirror=Mirror(Backend("predictor", "5e6f7a8b", 0), 50),
    )
    obj = load("iris")
    obj["spec"]["tls"] = {"secretName": "iris-cert", "gatewayCA": {"configMapName": "iris-ca"}}
    isvc = InferenceService.model_validate(obj)
    predictor = obj["spec"]["predictor"]
    predictors = {("predictor", "1a2b3c4d"): predictor, ("predictor", "5e6f7a8b"): predictor}
    (policy,) = by_kind(
        build_children(isvc, plan, predictors, OperatorConfig()), "BackendTLSPolicy"
    ).values()
    ns = obj["metadata"]["namespace"]
    assert policy["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert policy["spec"] == {
        "targetRefs": [
            {"group": "", "kind": "Service", "name": f"iris-predictor-{rev}", "sectionName": "http"}
            for rev in ("1a2b3c4d", "5e6f7a8b")
        ],
        "validation": {
            "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "iris-ca"}],
            "hostname": f"iris.{ns}.svc",
        },
    }
    nginx = build_children(isvc, PLAN, predictors, OperatorConfig(ingress_mode="nginx"))
    assert not by_kind(nginx, "BackendTLSPolicy")
    assert not by_kind(children({"secretName": "iris-cert"}), "BackendTLSPolicy")
