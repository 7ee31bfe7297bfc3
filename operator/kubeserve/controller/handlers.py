"""kopf wiring: every decorator of the operator lives here, and each handler is thin.

Indices hold the live InferenceServices and their children (fed by kopf's watches);
kopf does not start event handlers until every index has listed its objects, so the
first reconcile after a restart already sees what exists and writes nothing new. A
startup handler hands the indices to the controller: kopf creates them (empty) before
the startup handlers run and fills the same objects as the watches list.
Event handlers only enqueue the owning InferenceService's key.

The liveness probe (kopf's /healthz) includes the work queue: a pass that even the pass
timeout could not stop makes the probe fail (kopf answers 500), so Kubernetes restarts
the operator instead of leaving that key unreconciled while the probe stays green.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import kopf

from kubeserve.controller.state import CHILD_KINDS, ISVC_INDEX, ChildKind, Controller
from kubeserve.controller.workqueue import WorkQueue
from kubeserve_runtime.contract import GROUP, LABEL_ISVC, PLURAL, VERSION


def _snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """A detached copy of a watched object (kopf reuses its body views)."""
    return copy.deepcopy(dict(body))


def queue_health(queue: WorkQueue) -> dict[str, int]:
    """The work queue's part of /healthz; raises kopf.PermanentError naming stuck passes."""
    stuck = queue.stalled()
    if stuck:
        names = ", ".join(
            f"{ns}/{name} for {age:.0f}s" for (ns, name), age in sorted(stuck.items())
        )
        raise kopf.PermanentError(f"reconcile passes stuck: {names}")
    return {"running": queue.running()}


def register(registry: kopf.OperatorRegistry, controller: Controller) -> None:
    """Register the indices, event handlers and liveness probe of `controller`."""

    def probe_queue(**_: Any) -> dict[str, int]:
        return queue_health(controller.queue)

    kopf.on.probe(id="queue", registry=registry)(probe_queue)

    def attach_indices(**kwargs: Any) -> None:
        controller.attach(kwargs)

    kopf.on.startup(id="attach_indices", registry=registry)(attach_indices)

    def index_isvc(**kwargs: Any) -> object:
        return {(kwargs["namespace"], kwargs["name"]): _snapshot(kwargs["body"])}

    kopf.index(GROUP, VERSION, PLURAL, id=ISVC_INDEX, registry=registry)(index_isvc)

    async def on_isvc(**kwargs: Any) -> None:
        key = (kwargs["namespace"], kwargs["name"])
        controller.isvc_event(str(kwargs.get("type") or ""), key)

    kopf.on.event(GROUP, VERSION, PLURAL, id="isvc_event", registry=registry)(on_isvc)

    for child in CHILD_KINDS:
        _register_child(registry, controller, child)


def _register_child(
    registry: kopf.OperatorRegistry, controller: Controller, child: ChildKind
) -> None:
    labels = {LABEL_ISVC: kopf.PRESENT}

    def index_child(**kwargs: Any) -> object:
        key = (kwargs["namespace"], kwargs["labels"][LABEL_ISVC])
        return {key: _snapshot(kwargs["body"])}

    kopf.index(
        child.group,
        child.version,
        child.plural,
        id=child.index_id,
        labels=labels,
        registry=registry,
    )(index_child)

    async def on_child(**kwargs: Any) -> None:
        controller.child_event((kwargs["namespace"], kwargs["labels"][LABEL_ISVC]))

    kopf.on.event(
        child.group,
        child.version,
        child.plural,
        id=f"{child.plural}_event",
        labels=labels,
        registry=registry,
    )(on_child)
