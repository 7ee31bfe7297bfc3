"""The controller object: the in-memory view of the cluster and the work queue.

kopf's indices (live views of the watched objects) are handed over once per operator
start, by a startup handler (:func:`kubeserve.controller.handlers.register`), through
:meth:`Controller.attach`; the reconcile pass reads the InferenceService and its
children from there instead of asking the API server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubeserve.controller.workqueue import Key, WorkQueue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChildKind:
    """A kind the operator creates and watches."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        """apiVersion as written in objects."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def index_id(self) -> str:
        """Name of the kopf index (and handler kwarg) holding these children."""
        return f"children_{self.plural}"


CHILD_KINDS = (
    ChildKind("apps", "v1", "deployments", "Deployment"),
    ChildKind("", "v1", "services", "Service"),
    ChildKind("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
    ChildKind("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    ChildKind("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute"),
    ChildKind("gateway.networking.k8s.io", "v1", "backendtlspolicies", "BackendTLSPolicy"),
    ChildKind("networking.k8s.io", "v1", "ingresses", "Ingress"),
    ChildKind("cert-manager.io", "v1", "certificates", "Certificate"),
    ChildKind("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
)

ISVC_INDEX = "isvc_index"
"""Name of the kopf index (and handler kwarg) holding the InferenceServices."""
INDEX_IDS = (ISVC_INDEX, *(child.index_id for child in CHILD_KINDS))
"""Every index the controller reads."""

Reconcile = Callable[["Controller", Key], Awaitable[float | None]]


@dataclass
class Controller:
    """Receives events, keeps the indices, runs reconciles through the work queue."""

    reconcile: Reconcile
    concurrency: int = 4
    indices: dict[str, Mapping[Any, Any]] = field(default_factory=dict)
    queue: WorkQueue = field(init=False)

    def __post_init__(self) -> None:
        self.queue = WorkQueue(self._work, concurrency=self.concurrency)

    async def _work(self, key: Key) -> float | None:
        return await self.reconcile(self, key)

    def attach(self, indices: Mapping[str, Mapping[Any, Any]]) -> None:
        """Read from these indices (live views kopf fills); each of :data:`INDEX_IDS` must
        be there. Called at every operator start: a restarted kopf brings new indices."""
        missing = [i for i in INDEX_IDS if i not in indices]
        if missing:
            raise KeyError(f"kopf did not hand over the indices {', '.join(missing)}")
        self.indices = {i: indices[i] for i in INDEX_IDS}

    def isvc_event(self, event_type: str, key: Key) -> None:
        """An InferenceService was listed, added, modified or deleted."""
        if event_type == "DELETED":
            self.queue.forget(key)
            return
        self.queue.add(key)

    def child_event(self, key: Key) -> None:
        """A child changed: its owner may need repair or a status update."""
        if self.isvc(key) is not None:
            self.queue.add(key)

    def isvc(self, key: Key) -> dict[str, Any] | None:
        """The live InferenceService of `key`, or None once it is gone."""
        return _first(self.indices.get(ISVC_INDEX), key)

    def children(self, key: Key) -> list[dict[str, Any]]:
        """All live children of `key` across the watched kinds."""
        found: list[dict[str, Any]] = []
        for child in CHILD_KINDS:
            index = self.indices.get(child.index_id)
            if index is not None and key in index:
                found.extend(index[key])
        return found

    def managed_count(self) -> int:
        """How many InferenceServices are known."""
        return len(self.indices.get(ISVC_INDEX) or {})


def _first(index: Mapping[Any, Any] | None, key: Key) -> dict[str, Any] | None:
    if index is None or key not in index:
        return None
    for value in index[key]:
        return dict(value)
    return None
