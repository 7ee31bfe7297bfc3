"""Pure parts of the reconcile pass: replica ownership with an HPA, workload readiness."""

from __future__ import annotations

from typing import Any

from kubeserve.controller.reconcile import keep_autoscaled_replicas, object_key, observe_workloads


def deployment(name: str, replicas: int) -> dict[str, Any]:
    """A built Deployment."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
    }


def hpa(target: str, low: int, high: int) -> dict[str, Any]:
    """A built HPA scaling `target`."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": target},
        "spec": {"scaleTargetRef": {"name": target}, "minReplicas": low, "maxReplicas": high},
    }


def test_autoscaled_deployments_keep_the_hpa_value_within_bounds() -> None:
    """The HPA's choice is kept (no fight), clamped when the bounds moved; new ones start at min."""
    desired = [
        deployment("a", 2),
        hpa("a", 2, 6),
        deployment("b", 2),
        hpa("b", 2, 3),
        deployment("c", 2),
        hpa("c", 2, 6),
        deployment("fixed", 1),
    ]
    live = {
        object_key(deployment("a", 5)): deployment("a", 5),
        object_key(deployment("b", 5)): deployment("b", 5),
        object_key(deployment("fixed", 4)): deployment("fixed", 4),
    }
    keep_autoscaled_replicas(desired, live)
    replicas = {
        o["metadata"]["name"]: o["spec"]["replicas"] for o in desired if o["kind"] == "Deployment"
    }
    assert replicas == {"a": 5, "b": 3, "c": 2, "fixed": 1}


def test_observe_workloads_needs_a_finished_rollout() -> None:
    """Ready means: the controller saw this generation and enough replicas are available."""
    labels = {"serving.kubeserve.io/variant": "predictor", "serving.kubeserve.io/revision": "r1"}
    live: dict[str, Any] = {
        "kind": "Deployment",
        "metadata": {"name": "x", "labels": labels, "generation": 2},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 1,
            "updatedReplicas": 2,
            "availableReplicas": 2,
            "readyReplicas": 2,
        },
    }
    seen = observe_workloads([live])
    assert not seen[("predictor", "r1")].ready
    live["status"]["observedGeneration"] = 2
    seen = observe_workloads([live])
    assert seen[("predictor", "r1")].ready
    assert seen[("predictor", "r1")].ready_replicas == 2


def test_failure_message_prefers_the_api_servers_words() -> None:
    """An API error shows its status and message; anything else its type and first line."""
    from kubernetes.client.exceptions import ApiException

    from kubeserve.controller.reconcile import failure_message

    api = ApiException(status=500, reason="Internal Server Error")
    api.body = '{"kind":"Status","message":"failed to allocate a serviceIP: range is full"}'
    assert failure_message(api) == "500 failed to allocate a serviceIP: range is full"
    assert failure_message(ValueError("bad\nsecond line")) == "ValueError: bad"


def test_unwanted_children_spare_the_last_routes_when_routes_are_unsupported() -> None:
    """After a RouteUnsupported, live route objects stay (traffic keeps flowing)."""
    from kubeserve.controller.reconcile import unwanted

    def child(kind: str, name: str, component: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": kind,
            "metadata": {"name": name, "labels": {"app.kubernetes.io/component": component}},
        }

    kept, old = (
        child("Deployment", "iris-predictor-a", "predictor"),
        child("Deployment", "iris-predictor-old", "predictor"),
    )
    ingress, service = child("Ingress", "iris", "router"), child("Service", "iris", "router")
    live = {object_key(o): o for o in (kept, old, ingress, service)}
    assert unwanted(live, [kept]) == sorted(object_key(o) for o in (old, ingress, service))
    assert unwanted(live, [kept], keep_routes=True) == [object_key(old)]


def test_rollout_settings_follow_the_operator_config() -> None:
    """The operator's history_limit (Helm value) reaches the rollout decision."""
    from kubeserve.config import OperatorConfig
    from kubeserve.controller.metrics import OperatorMetrics
    from kubeserve.controller.reconcile import Reconciler, rollout_settings

    config = OperatorConfig(history_limit=3)
    assert rollout_settings(config).history_limit == 3
    reconciler = Reconciler(kube=None, config=config, metrics=OperatorMetrics())  # type: ignore[arg-type]
    assert reconciler.settings is not None
    assert reconciler.settings.history_limit == 3


def test_read_your_writes_survives_an_index_that_catches_up_step_by_step() -> None:
    """Two writes in a row (v1 -> v2 -> v3): while the index shows v1 or v2 the pass
    uses v3; once it shows v3 the index is current again."""
    from kubeserve.config import OperatorConfig
    from kubeserve.controller.metrics import OperatorMetrics
    from kubeserve.controller.reconcile import Reconciler

    def version(rv: str) -> dict[str, Any]:
        return {**deployment("x", 1), "metadata": {"name": "x", "resourceVersion": rv}}

    reconciler = Reconciler(kube=None, config=OperatorConfig(), metrics=OperatorMetrics())  # type: ignore[arg-type]
    reconciler._remember("ns", version("1"), version("2"))
    reconciler._remember("ns", reconciler._fresh("ns", version("1")), version("3"))
    assert reconciler._fresh("ns", version("1")) == version("3")
    assert reconciler._fresh("ns", version("2")) == version("3")
    assert reconciler._fresh("ns", version("3")) == version("3")
    assert reconciler._fresh("ns", version("4")) == version("4")


def test_observe_workloads_reports_an_exceeded_progress_deadline() -> None:
    """The Deployment controller's ProgressDeadlineExceeded is the workload's stall message;
    a Progressing=False for another reason (or True) is not a stall."""
    labels = {"serving.kubeserve.io/variant": "predictor", "serving.kubeserve.io/revision": "r2"}
    progressing = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "x-1" has timed out progressing.',
    }
    live: dict[str, Any] = {
        "kind": "Deployment",
        "metadata": {"name": "x", "labels": labels, "generation": 1},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, "conditions": [progressing]},
    }
    seen = observe_workloads([live])[("predictor", "r2")]
    assert (seen.ready, seen.stalled) == (False, 'ReplicaSet "x-1" has timed out progressing.')
    progressing.update(status="True", reason="ReplicaSetUpdated")
    assert observe_workloads([live])[("predictor", "r2")].stalled is None
