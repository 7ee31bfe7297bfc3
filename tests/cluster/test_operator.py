"""The operator against a real control plane: create, update, repair, delete, restart.

Each test runs its own ``kubeserve run`` process scoped to its namespace and acts as a
user would: it applies InferenceService objects and watches objects and status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from isvc_api import create, isvc, predictor, set_storage_uri, until
from kubernetes import client

from kubeserve.controller.process import OperatorProcess
from kubeserve.controller.watching import condition, is_ready, wait_isvc
from kubeserve_runtime.contract import GROUP, PLURAL, VERSION

LABEL = "serving.kubeserve.io/inferenceservice"


def children(api: client.ApiClient, namespace: str, name: str) -> dict[str, list[dict[str, Any]]]:
    """Children by kind, as JSON."""
    selector = f"{LABEL}={name}"
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    auto, policy = client.AutoscalingV2Api(api), client.PolicyV1Api(api)
    routes = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", label_selector=selector
    )["items"]
    found = {
        "Deployment": apps.list_namespaced_deployment(namespace, label_selector=selector).items,
        "Service": core.list_namespaced_service(namespace, label_selector=selector).items,
        "HorizontalPodAutoscaler": auto.list_namespaced_horizontal_pod_autoscaler(
            namespace, label_selector=selector
        ).items,
        "PodDisruptionBudget": policy.list_namespaced_pod_disruption_budget(
            namespace, label_selector=selector
        ).items,
    }
    result = {k: [api.sanitize_for_serialization(o) for o in v] for k, v in found.items()}
    result["HTTPRoute"] = routes
    return result


def test_apply_creates_owned_children_and_becomes_ready(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    """Children carry owner references and labels; status turns Ready with a URL."""
    created = create(
        api_client,
        namespace,
        isvc("iris", {"predictor": predictor("s3://m/v1", min_replicas=2, max_replicas=4)}),
    )
    ready = wait_isvc(api_client, namespace, "iris", is_ready, "Ready")
    kids = children(api_client, namespace, "iris")
    assert {k: len(v) for k, v in kids.items()} == {
        "Deployment": 1,
        "Service": 2,
        "HorizontalPodAutoscaler": 1,
        "PodDisruptionBudget": 1,
        "HTTPRoute": 1,
    }
    for objs in kids.values():
        for obj in objs:
            refs = obj["metadata"]["ownerReferences"]
            assert [(r["kind"], r["uid"], r["controller"]) for r in refs] == [
                ("InferenceService", created["metadata"]["uid"], True)
            ]
            assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubeserve"
    status = ready["status"]
    assert status["url"] == f"http://iris.{namespace}.example.com"
    assert status["readyReplicas"] == 2
    stable = status["revisions"]["stable"]
    assert kids["Deployment"][0]["metadata"]["name"] == stable["name"]
    assert stable["trafficPercent"] == 100
    assert condition(ready, "PredictorReady")["status"] == "True"  # type: ignore[index]
    events = (
        client.CoreV1Api(api_client)
        .list_namespaced_event(namespace, field_selector="involvedObject.name=iris")
        .items
    )
    assert any(e.reason == "RevisionCreated" and e.source.component == "kubeserve" for e in events)


def test_spec_edit_rolls_out_and_observed_generation_follows(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    """A new predictor spec makes a new revision; the old one is removed after it is Ready."""
    create(api_client, namespace, isvc("iris", {"predictor": predictor("s3://m/v1")}))
    first = wait_isvc(api_client, namespace, "iris", is_ready, "Ready")
    old = first["status"]["revisions"]["stable"]["name"]
    set_storage_uri(api_client, namespace, "iris", "s3://m/v2")
    second = wait_isvc(
        api_client,
        namespace,
        "iris",
        lambda o: is_ready(o) and o["status"]["revisions"]["stable"]["name"] != old,
        "the new revision stable",
    )
    assert second["status"]["observedGeneration"] == 2
    new = second["status"]["revisions"]["stable"]["name"]
    route = children(api_client, namespace, "iris")["HTTPRoute"][0]
    backends = [b["name"] for rule in route["spec"]["rules"] for b in rule["backendRefs"]]
    assert backends == [new]
    until(
        lambda: (
            [d["metadata"]["name"] for d in children(api_client, namespace, "iris")["Deployment"]]
            == [new]
        ),
        "old revision pruned after the drain",
    )


def test_drift_is_repaired(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    """A hand-edited or deleted child comes back as the operator wants it."""
    create(api_client, namespace, isvc("iris", {"predictor": predictor("s3://m/v1")}))
    ready = wait_isvc(api_client, namespace, "iris", is_ready, "Ready")
    name = ready["status"]["revisions"]["stable"]["name"]
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    apps.patch_namespaced_deployment(name, namespace, {"spec": {"replicas": 3}})
    until(
        lambda: apps.read_namespaced_deployment(name, namespace).spec.replicas == 1,
        "replicas repaired",
    )
    core.delete_namespaced_service(name, namespace)
    until(
        lambda: any(s.metadata.name == name for s in core.list_namespaced_service(namespace).items),
        "deleted Service recreated",
    )


def test_delete_garbage_collects_children(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    """Owner references let the garbage collector remove every child."""
    create(
        api_client,
        namespace,
        isvc("iris", {"predictor": predictor("s3://m/v1", min_replicas=2, max_replicas=3)}),
    )
    wait_isvc(api_client, namespace, "iris", is_ready, "Ready")
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "iris"
    )
    until(
        lambda: not any(children(api_client, namespace, "iris").values()),
        "children garbage-collected",
        timeout=60,
    )


def test_pods_pass_pod_security_restricted(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    """In a namespace enforcing "restricted", the predictor's pods are admitted."""
    core = client.CoreV1Api(api_client)
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    create(api_client, namespace, isvc("iris", {"predictor": predictor("s3://m/v1")}))
    wait_isvc(api_client, namespace, "iris", is_ready, "Ready")
    pods = core.list_namespaced_pod(namespace, label_selector=f"{LABEL}=iris").items
    assert len(pods) == 1
    events = core.list_namespaced_event(namespace).items
    assert not [e.message for e in events if e.reason == "FailedCreate"]


def passes(operator: OperatorProcess) -> float:
    """Successful reconcile passes of an operator so far."""
    return operator.metrics().get(("kubeserve_reconcile_total", (("result", "success"),)), 0.0)


IDLE_ENV = {"KUBESERVE_OPERATOR_RECONCILE_INTERVAL_SECONDS": "1"}
"""A pass every second, so "idle for N passes" comes quickly."""


def test_idle_and_restart_write_nothing(
    api_client: client.ApiClient,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    """Once Ready, an idle operator sends no writes however many passes run; a restarted
    one resumes without any. Passes are counted, not waited for by the clock."""
    first = operator_factory(env=IDLE_ENV)
    create(
        api_client,
        namespace,
        isvc("iris", {"predictor": predictor("s3://m/v1", min_replicas=2, max_replicas=3)}),
    )
    wait_isvc(api_client, namespace, "iris", is_ready, "Ready")
    at_ready = passes(first)
    until(lambda: passes(first) >= at_ready + 2, "two passes after Ready (echoes settled)")
    settled, counted = first.writes(), passes(first)
    until(lambda: passes(first) >= counted + 3, "three more idle passes")
    assert first.writes() == settled, first.api_requests()
    assert first.health()["queue"]["running"] in (0, 1)
    first.kill()
    second = operator_factory(env=IDLE_ENV)
    until(lambda: passes(second) >= 3, "three passes of the restarted operator")
    assert second.writes() == 0, second.api_requests()
