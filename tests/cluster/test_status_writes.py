"""Status writes and Events of one reconcile pass, against the real API server.

These races cannot be timed with a running operator, so the reconcile pass runs in
process (the same :class:`Reconciler` ``kubeserve run`` uses, with a real
:class:`Kube`), and its indices are a snapshot listed from the API server at a moment
the test chooses — exactly what a lagging watch hands a pass. Two collaborators are
real but steered: :class:`EditDuringStatusWrite` lets a "user" edit the spec right before
the pass's status write (the race of the issue), and an impersonated ServiceAccount
whose Role lacks Events makes the API server refuse Event posts (a chart without that
RBAC rule).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from isvc_api import create, get, isvc, predictor, set_storage_uri
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from kubeserve.config import OperatorConfig
from kubeserve.controller.kube import Kube
from kubeserve.controller.metrics import OperatorMetrics
from kubeserve.controller.reconcile import Reconciler
from kubeserve.controller.state import CHILD_KINDS, ISVC_INDEX, Controller
from kubeserve.controller.watching import condition
from kubeserve.rollout.revision import revision_hash
from kubeserve_runtime.contract import GROUP, KIND, LABEL_ISVC, VERSION

Index = dict[tuple[str, str], list[dict[str, Any]]]


@pytest.fixture
def own_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    """An API client of its own (a Kube installs its timeouts on the client it gets)."""
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api
    finally:
        api.close()


def snapshot(api: client.ApiClient, namespace: str) -> dict[str, Index]:
    """The operator's indices as a watch would have filled them right now."""
    dynamic = DynamicClient(api)

    def listed(api_version: str, kind: str, key: Callable[[dict[str, Any]], str]) -> Index:
        resource = dynamic.resources.get(api_version=api_version, kind=kind)
        index: Index = {}
        selector = None if kind == KIND else LABEL_ISVC
        for item in resource.get(namespace=namespace, label_selector=selector).items:
            obj = item.to_dict()
            index.setdefault((namespace, key(obj)), []).append(obj)
        return index

    indices = {ISVC_INDEX: listed(f"{GROUP}/{VERSION}", KIND, lambda o: o["metadata"]["name"])}
    for child in CHILD_KINDS:
        indices[child.index_id] = listed(
            child.api_version, child.kind, lambda o: o["metadata"]["labels"][LABEL_ISVC]
        )
    return indices


def reconcile_once(kube: Kube, indices: dict[str, Index], key: tuple[str, str]) -> float | None:
    """One pass of a fresh reconciler (a restarted operator) over `indices`."""
    reconciler = Reconciler(kube=kube, config=OperatorConfig(), metrics=OperatorMetrics())
    controller = Controller(reconcile=reconciler.reconcile)
    controller.attach(indices)
    return asyncio.run(reconciler.reconcile(controller, key))


def events(api: client.ApiClient, namespace: str, reason: str) -> list[str]:
    """Messages of the Events with `reason` about iris."""
    items = (
        client.CoreV1Api(api)
        .list_namespaced_event(namespace, field_selector="involvedObject.name=iris")
        .items
    )
    return sorted(e.message for e in items if e.reason == reason)


class EditDuringStatusWrite(Kube):
    """The real Kube; right before its first status write, `edit` runs (a user's edit)."""

    def __init__(self, api: client.ApiClient, edit: Callable[[], None]) -> None:
        super().__init__(api, OperatorMetrics())
        self._edit: Callable[[], None] | None = edit

    async def patch_status(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Let the edit land first, then write the status as the pass decided it."""
        if self._edit is not None:
            edit, self._edit = self._edit, None
            await asyncio.to_thread(edit)
        return await super().patch_status(*args, **kwargs)


def test_a_spec_edit_racing_the_status_write_is_decided_again(
    api_client: client.ApiClient, own_client: client.ApiClient, namespace: str
) -> None:
    """The status is never written from the old spec: the write meets 409, the pass reads
    the object, decides from the new spec and posts only that decision's Event."""
    create(api_client, namespace, isvc("iris", {"predictor": predictor("s3://m/v1")}))
    indices = snapshot(api_client, namespace)
    kube = EditDuringStatusWrite(
        own_client, lambda: set_storage_uri(api_client, namespace, "iris", "s3://m/v2")
    )
    reconcile_once(kube, indices, (namespace, "iris"))

    stored = get(api_client, namespace, "iris")
    new = revision_hash(stored["spec"]["predictor"])
    assert stored["metadata"]["generation"] == 2
    assert stored["status"]["observedGeneration"] == 2
    assert stored["status"]["revisions"]["stable"]["hash"] == new
    assert events(api_client, namespace, "RevisionCreated") == [
        f"revision {new} serves the predictor"
    ]


def test_a_pass_from_a_stale_index_posts_no_event_twice(
    api_client: client.ApiClient, own_client: client.ApiClient, namespace: str
) -> None:
    """A restarted operator whose index still shows the object before the last status
    write decides nothing twice: its write meets 409 and the re-read shows it is done."""
    create(api_client, namespace, isvc("iris", {"predictor": predictor("s3://m/v1")}))
    stale = snapshot(api_client, namespace)
    kube = Kube(own_client, OperatorMetrics())
    reconcile_once(kube, stale, (namespace, "iris"))
    first = get(api_client, namespace, "iris")["status"]["revisions"]
    assert len(events(api_client, namespace, "RevisionCreated")) == 1

    reconcile_once(kube, stale, (namespace, "iris"))
    assert len(events(api_client, namespace, "RevisionCreated")) == 1
    again = get(api_client, namespace, "iris")["status"]["revisions"]
    assert (again["stable"]["hash"], again["history"]) == (
        first["stable"]["hash"],
        first["history"],
    )


def impersonate_without_events(api: client.ApiClient, namespace: str) -> str:
    """A ServiceAccount user whose Role allows all the operator does except Events."""
    user = "kubeserve-no-events"
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": user},
            "rules": [
                {
                    "apiGroups": [
                        "apps",
                        "autoscaling",
                        "policy",
                        "networking.k8s.io",
                        "gateway.networking.k8s.io",
                        GROUP,
                    ],
                    "resources": ["*"],
                    "verbs": ["*"],
                },
                {"apiGroups": [""], "resources": ["services", "pods"], "verbs": ["*"]},
            ],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
            "subjects": [{"kind": "ServiceAccount", "name": user, "namespace": namespace}],
        },
    )
    return f"system:serviceaccount:{namespace}:{user}"


def test_a_refused_event_does_not_fail_the_pass(
    api_client: client.ApiClient,
    own_client: client.ApiClient,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The Event post is refused (403); the pass still succeeds, Ready does not turn
    ReconcileError, and the lost Event is logged."""
    own_client.set_default_header(
        "Impersonate-User", impersonate_without_events(api_client, namespace)
    )
    create(api_client, namespace, isvc("iris", {"predictor": predictor("s3://m/v1")}))
    kube = Kube(own_client, OperatorMetrics())
    with caplog.at_level(logging.WARNING, logger="kubeserve.controller.reconcile"):
        delay = reconcile_once(kube, snapshot(api_client, namespace), (namespace, "iris"))

    assert delay is not None
    stored = get(api_client, namespace, "iris")
    ready = condition(stored, "Ready") or {}
    assert ready.get("reason") == "PredictorNotReady"
    assert stored["status"]["revisions"]["stable"]["hash"]
    assert events(api_client, namespace, "RevisionCreated") == []
    assert "could not post the RevisionCreated Event (403" in caplog.text
