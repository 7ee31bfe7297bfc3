"""spec.tls and spec.networkPolicy against the real API server: the rendered cert-manager
Certificate, NetworkPolicy and Gateway API BackendTLSPolicy pass a strict server-side
dry-run (cert-manager's own Certificate CRD is installed, no cert-manager controller
runs), and the operator applies them as owned children and prunes them when the spec no
longer asks for them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from isvc_api import create, get, isvc, patch, predictor, until
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubeserve.api.v1alpha1 import InferenceService
from kubeserve.builders import build_children
from kubeserve.config import OperatorConfig
from kubeserve.controller.process import OperatorProcess
from kubeserve.plan import Backend, TrafficPlan, Workload

pytestmark = pytest.mark.cluster

CERTS = ("cert-manager.io", "v1")
GATEWAY = ("gateway.networking.k8s.io", "v1")
ISSUER = {"name": "internal-ca", "kind": "ClusterIssuer"}


def secured(name: str) -> dict[str, Any]:
    """An InferenceService with a cert-manager certificate, mTLS and a NetworkPolicy."""
    return isvc(
        name,
        {
            "predictor": predictor("s3://m/v1"),
            "tls": {
                "certManager": {"issuerRef": ISSUER},
                "clientCA": {"secretName": "ca"},
                "gatewayCA": {"configMapName": "iris-ca"},
            },
            "networkPolicy": {
                "allowSameNamespace": False,
                "egress": [{"ports": [{"protocol": "UDP", "port": 53}]}],
            },
        },
    )


def rendered(namespace: str) -> dict[str, dict[str, Any]]:
    """The Certificate, NetworkPolicy and BackendTLSPolicy the builders make for
    ``secured``, by kind."""
    obj = copy.deepcopy(secured("iris"))
    obj["metadata"].update({"namespace": namespace})
    plan = TrafficPlan(
        workloads=(Workload("predictor", "0123abcd", 1, 1),),
        backends=(Backend("predictor", "0123abcd", 100),),
    )
    config = OperatorConfig(
        network_policy_ingress_namespaces=["gateways"],
        network_policy_ingress_pod_labels={"app": "envoy"},
    )
    children = build_children(
        InferenceService.model_validate(obj),
        plan,
        {("predictor", "0123abcd"): obj["spec"]["predictor"]},
        config,
    )
    kinds = ("Certificate", "NetworkPolicy", "BackendTLSPolicy")
    return {c["kind"]: c for c in children if c["kind"] in kinds}


def test_rendered_certificate_and_policy_pass_a_strict_dry_run(
    api_client: client.ApiClient, namespace: str
) -> None:
    """Every field the builders write is known to the real schemas; a value outside
    cert-manager's schema is refused, so the check is real."""
    objects = rendered(namespace)
    custom = client.CustomObjectsApi(api_client)
    accepted = custom.create_namespaced_custom_object(
        *CERTS,
        namespace,
        "certificates",
        objects["Certificate"],
        dry_run="All",
        field_validation="Strict",
    )
    assert accepted["spec"]["dnsNames"][2] == f"iris.{namespace}.svc"
    networking = client.NetworkingV1Api(api_client)
    policy = networking.create_namespaced_network_policy(
        namespace, objects["NetworkPolicy"], dry_run="All", field_validation="Strict"
    )
    assert policy.spec.policy_types == ["Ingress", "Egress"]
    backend = custom.create_namespaced_custom_object(
        *GATEWAY,
        namespace,
        "backendtlspolicies",
        objects["BackendTLSPolicy"],
        dry_run="All",
        field_validation="Strict",
    )
    assert backend["spec"]["validation"]["hostname"] == f"iris.{namespace}.svc"

    bad = copy.deepcopy(objects["Certificate"])
    bad["spec"]["privateKey"]["algorithm"] = "DSA"
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(
            *CERTS, namespace, "certificates", bad, dry_run="All", field_validation="Strict"
        )
    assert refused.value.status == 422
    assert "privateKey.algorithm" in str(refused.value.body)


def certificates(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """The Certificates in the namespace."""
    found = client.CustomObjectsApi(api).list_namespaced_custom_object(
        *CERTS, namespace, "certificates"
    )
    items: list[dict[str, Any]] = found["items"]
    return items


def backend_policies(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """The BackendTLSPolicies in the namespace."""
    found = client.CustomObjectsApi(api).list_namespaced_custom_object(
        *GATEWAY, namespace, "backendtlspolicies"
    )
    items: list[dict[str, Any]] = found["items"]
    return items


def policies(api: client.ApiClient, namespace: str) -> list[Any]:
    """The NetworkPolicies in the namespace."""
    items: list[Any] = client.NetworkingV1Api(api).list_namespaced_network_policy(namespace).items
    return items


def pod_template(api: client.ApiClient, namespace: str) -> Any:
    """The pod template of the InferenceService's only Deployment."""
    (deployment,) = client.AppsV1Api(api).list_namespaced_deployment(namespace).items
    return deployment.spec.template.spec


def test_operator_applies_and_prunes_certificate_and_policy(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    """Owned Certificate, NetworkPolicy and BackendTLSPolicy appear with the pods set up
    for TLS; when the spec switches to a user Secret without gatewayCA and turns the
    NetworkPolicy off, all three are deleted."""
    created = create(api_client, namespace, secured("iris"))
    uid = created["metadata"]["uid"]
    until(lambda: len(certificates(api_client, namespace)) == 1, "the Certificate")
    until(lambda: len(policies(api_client, namespace)) == 1, "the NetworkPolicy")
    until(lambda: len(backend_policies(api_client, namespace)) == 1, "the BackendTLSPolicy")
    (cert,) = certificates(api_client, namespace)
    assert cert["metadata"]["ownerReferences"][0]["uid"] == uid
    assert cert["spec"]["secretName"] == "iris-tls"
    assert cert["spec"]["issuerRef"] == {**ISSUER, "group": "cert-manager.io"}
    (policy,) = policies(api_client, namespace)
    assert policy.metadata.owner_references[0].uid == uid
    assert policy.spec.egress[0].ports[0].port == 53
    pod = pod_template(api_client, namespace)
    volumes = {v.name: v for v in pod.volumes}
    assert volumes["tls"].secret.secret_name == "iris-tls"
    assert volumes["client-ca"].secret.secret_name == "ca"
    assert pod.containers[0].readiness_probe.http_get.scheme == "HTTPS"

    patch(
        api_client,
        namespace,
        "iris",
        {
            "spec": {
                "tls": {"certManager": None, "gatewayCA": None, "secretName": "mine"},
                "networkPolicy": None,
            }
        },
    )
    patch(api_client, namespace, "iris", {"spec": {"networkPolicy": {"enabled": False}}})
    assert get(api_client, namespace, "iris")["spec"]["tls"] == {
        "secretName": "mine",
        "clientCA": {"secretName": "ca"},
    }
    until(lambda: not certificates(api_client, namespace), "the Certificate pruned")
    until(lambda: not policies(api_client, namespace), "the NetworkPolicy pruned")
    until(lambda: not backend_policies(api_client, namespace), "the BackendTLSPolicy pruned")
    until(
        lambda: (
            {v.name: v for v in pod_template(api_client, namespace).volumes}[
                "tls"
            ].secret.secret_name
            == "mine"
        ),
        "the pods mounting the user's Secret",
    )
