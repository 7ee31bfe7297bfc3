"""The local control plane behaves like a real cluster where the operator depends on it.

Each test talks to the real API server exactly as a user's client would: workloads
become available through the scheduler and KWOK, owner references are garbage
collected, invalid objects are refused with a readable reason, Pod Security and RBAC
are enforced, and the Gateway API CRDs validate what they accept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

pytestmark = pytest.mark.cluster

RESTRICTED_CONTAINER = {
    "name": "app",
    "image": "registry.invalid/app:1",
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
        "readOnlyRootFilesystem": True,
    },
}


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    """Return a minimal Deployment manifest."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [RESTRICTED_CONTAINER]},
            },
        },
    }


def message(error: ApiException) -> str:
    """Return the API server's human-readable message from an error response."""
    return str(json.loads(error.body)["message"])


def wait_for(
    list_call: Callable[..., Any],
    namespace: str,
    name: str,
    done: Callable[[Any], bool],
    seconds: int = 60,
) -> Any:
    """Watch one named object until ``done(object)``; return it or fail after ``seconds``."""
    stream = watch.Watch().stream(
        list_call, namespace, field_selector=f"metadata.name={name}", timeout_seconds=seconds
    )
    for event in stream:
        if done(event["object"]):
            return event["object"]
    pytest.fail(f"{name} did not reach the expected state within {seconds}s")


def test_deployment_becomes_available_on_the_kwok_node(
    api_client: client.ApiClient, namespace: str
) -> None:
    """The scheduler binds the pod to the fake node, KWOK runs it, the Deployment is available."""
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    apps.create_namespaced_deployment(namespace, deployment("web"))

    ready = wait_for(
        apps.list_namespaced_deployment,
        namespace,
        "web",
        lambda d: (d.status.available_replicas or 0) == 1,
    )

    assert ready.status.ready_replicas == 1
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert [(pod.spec.node_name, pod.status.phase) for pod in pods] == [("kwok-node-0", "Running")]
    assert pods[0].status.pod_ip.startswith("10.244.")


def test_deleting_an_owner_garbage_collects_its_child(
    api_client: client.ApiClient, namespace: str
) -> None:
    """A child with an ownerReference disappears once its owner is deleted."""
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "owner"}, "data": {"role": "owner"}}
    )
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
    }
    child = core.create_namespaced_config_map(
        namespace,
        {"metadata": {"name": "child", "ownerReferences": [reference]}, "data": {"role": "child"}},
    )

    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    # Watch from the child's creation, so a deletion that already happened is still seen.
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        namespace,
        field_selector="metadata.name=child",
        resource_version=child.metadata.resource_version,
        timeout_seconds=60,
    )
    assert any(event["type"] == "DELETED" for event in stream), "child was not garbage-collected"
    assert [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items] == [
        "kube-root-ca.crt"
    ]


def test_server_side_dry_run_refuses_a_bad_object_and_stores_nothing(
    api_client: client.ApiClient, namespace: str
) -> None:
    """The API server validates on dry-run, names the bad field, and persists nothing."""
    apps = client.AppsV1Api(api_client)
    bad = deployment("bad")
    bad["spec"]["replicas"] = -1
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}

    with pytest.raises(ApiException) as refused:
        apps.create_namespaced_deployment(namespace, bad, dry_run="All")

    assert refused.value.status == 422
    assert "spec.replicas: Invalid value: -1" in message(refused.value)
    assert "`selector` does not match template `labels`" in message(refused.value)
    good = apps.create_namespaced_deployment(namespace, deployment("good"), dry_run="All")
    assert good.metadata.name == "good"
    assert apps.list_namespaced_deployment(namespace).items == []


def test_gateway_api_crd_validates_httproute_weights(
    api_client: client.ApiClient, namespace: str
) -> None:
    """The Gateway API CRDs are installed and their schema refuses an out-of-range weight."""
    routes = client.CustomObjectsApi(api_client)
    route: dict[str, Any] = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "split"},
        "spec": {
            "rules": [
                {
                    "backendRefs": [
                        {"name": "stable", "port": 80, "weight": 90},
                        {"name": "canary", "port": 80, "weight": 10},
                    ]
                }
            ]
        },
    }
    args = ("gateway.networking.k8s.io", "v1", namespace, "httproutes")
    accepted = routes.create_namespaced_custom_object(*args, route, dry_run="All")
    assert accepted["spec"]["rules"][0]["backendRefs"][1]["weight"] == 10

    route["spec"]["rules"][0]["backendRefs"][1]["weight"] = 2_000_000
    with pytest.raises(ApiException) as refused:
        routes.create_namespaced_custom_object(*args, route, dry_run="All")
    assert refused.value.status == 422
    assert "weight" in message(refused.value)


def test_restricted_namespace_refuses_a_privileged_pod(
    api_client: client.ApiClient, namespace: str
) -> None:
    """Pod Security admission enforces ``restricted`` and explains each violation."""
    core = client.CoreV1Api(api_client)
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    privileged = {
        "metadata": {"name": "root"},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.invalid/app:1",
                    "securityContext": {"privileged": True},
                }
            ]
        },
    }

    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, privileged)

    assert refused.value.status == 403
    assert 'violates PodSecurity "restricted:latest"' in message(refused.value)
    assert "privileged" in message(refused.value)
    compliant = {"metadata": {"name": "ok"}, "spec": {"containers": [RESTRICTED_CONTAINER]}}
    assert core.create_namespaced_pod(namespace, compliant).metadata.name == "ok"


def test_service_account_tokens_are_authorized_by_rbac(
    api_client: client.ApiClient, namespace: str
) -> None:
    """A token from the TokenRequest API authenticates; RBAC decides what it may do."""
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    token = core.create_namespaced_service_account_token(
        "reader", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    config = client.Configuration()
    config.host = api_client.configuration.host
    config.ssl_ca_cert = api_client.configuration.ssl_ca_cert
    config.api_key = {"authorization": f"Bearer {token}"}

    with client.ApiClient(config) as as_reader:
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(as_reader).list_namespaced_config_map(namespace)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:reader" in message(denied.value)

        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "read-configmaps"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "reader"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-configmaps",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
        )
        # The authorizer sees the new binding through its informer: give it a moment.
        listed = Retrying(
            stop=stop_after_delay(10),
            wait=wait_fixed(0.2),
            retry=retry_if_exception(
                lambda exc: isinstance(exc, ApiException) and exc.status == 403
            ),
            reraise=True,
        )(client.CoreV1Api(as_reader).list_namespaced_config_map, namespace)
        assert [cm.metadata.name for cm in listed.items] == ["kube-root-ca.crt"]
