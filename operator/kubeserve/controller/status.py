"""Compute the InferenceService status from a decision and what the cluster shows.

Pure: the reconcile pass calls :func:`desired_status` and patches only when the result
differs from the live status. Conditions follow Kubernetes conventions: a condition's
``lastTransitionTime`` changes only when its ``status`` does, so an idle pass computes
a status equal to the live one and writes nothing. Beside Ready, the kstatus conditions
Reconciling and Stalled (:mod:`.health`) are present only while True; every condition
and the status carry ``observedGeneration``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubeserve.api.v1alpha1 import InferenceService
from kubeserve.builders.route import RouteUnsupported
from kubeserve.controller.health import health_conditions
from kubeserve.plan import DEFAULT_COMPONENT, TrafficPlan, workload_name
from kubeserve.rollout.decision import Condition, Decision, WorkloadKey, WorkloadObservation
from kubeserve.rollout.state import STATUS_KEY

READY = "Ready"
PREDICTOR_READY = "PredictorReady"
ROUTES_READY = "RoutesReady"


def timestamp(now: dt.datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes times."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    live: Sequence[Mapping[str, Any]] | None,
    wanted: Iterable[Condition],
    generation: int | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Return conditions sorted by type, keeping lastTransitionTime when status is unchanged."""
    previous = {str(c.get("type")): c for c in live or ()}
    merged: list[dict[str, Any]] = []
    for cond in sorted(wanted, key=lambda c: c.type):
        before = previous.get(cond.type)
        changed = before is None or before.get("status") != cond.status
        since = timestamp(now) if changed or before is None else before.get("lastTransitionTime")
        merged.append(
            {
                "type": cond.type,
                "status": cond.status,
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": since or timestamp(now),
                "observedGeneration": generation,
            }
        )
    return merged


def _percent(plan: TrafficPlan, component: str, revision: str) -> int:
    return sum(
        b.weight for b in plan.backends if (b.component, b.revision) == (component, revision)
    )


def _quality(state: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """status.revisions' quality of the canary and the stable: what the canary's last
    quality check read (only while a canary with minAccuracy/maxQualityDrop exists)."""
    read = state.canary.quality if state.canary is not None else None
    if read is None:
        return None, None

    def shown(scored: float, accuracy: float | None) -> dict[str, Any]:
        out: dict[str, Any] = {"scored": int(scored)}
        if accuracy is not None:
            out["accuracy"] = round(accuracy, 4)
        return out

    return shown(read.scored, read.accuracy), shown(read.stable_scored, read.stable_accuracy)


def desired_status(
    isvc: InferenceService,
    live_conditions: Sequence[Mapping[str, Any]] | None,
    decision: Decision,
    workloads: Mapping[WorkloadKey, WorkloadObservation],
    url: str | None,
    route_error: RouteUnsupported | None,
    now: dt.datetime,
    extra_conditions: Sequence[Condition] = (),
) -> dict[str, Any]:
    """The full status the InferenceService should show after this pass.

    `live_conditions` are the stored ones, as stored: a condition keeps its
    lastTransitionTime while its status holds. `extra_conditions` are shown as they are
    (DriftDetected); they do not count for Ready or the kstatus conditions.
    """
    name = isvc.metadata.name
    generation = isvc.metadata.generation
    plan = decision.plan
    state = decision.state

    def revision(role: Any, quality: dict[str, Any] | None = None) -> dict[str, Any] | None:
        if role is None:
            return None
        obs = workloads.get((DEFAULT_COMPONENT, role.revision))
        out = {
            "name": workload_name(name, DEFAULT_COMPONENT, role.revision),
            "hash": role.revision,
            "trafficPercent": _percent(plan, DEFAULT_COMPONENT, role.revision),
            "readyReplicas": obs.ready_replicas if obs else 0,
        }
        if quality is not None:
            out["quality"] = quality
        return out

    canary_quality, stable_quality = _quality(state)
    revisions: dict[str, Any] = {
        key: value
        for key, value in (
            ("stable", revision(state.stable, stable_quality)),
            ("canary", revision(state.canary, canary_quality)),
            ("previous", revision(state.previous)),
        )
        if value is not None
    }
    history = [
        {
            "name": workload_name(name, DEFAULT_COMPONENT, h.revision),
            "hash": h.revision,
            "outcome": h.outcome,
            "time": timestamp(h.time),
            "message": h.message,
        }
        for h in reversed(state.history)
    ]
    if history:
        revisions["history"] = history

    variants = []
    for component in sorted({w.component for w in plan.workloads}):
        serving = [b for b in plan.backends if b.component == component and b.weight > 0]
        rev = serving[0].revision if serving else None
        members = [w for w in plan.workloads if w.component == component]
        variants.append(
            {
                "name": component,
                "revision": rev,
                "weight": sum(b.weight for b in serving),
                "readyReplicas": sum(
                    o.ready_replicas
                    for (c, _), o in workloads.items()
                    if c == component and any(m.revision == _ for m in members)
                ),
                "replicas": sum(w.min_replicas for w in members),
            }
        )

    predictor_ready = next((c for c in decision.conditions if c.type == PREDICTOR_READY), None)
    routes = (
        Condition(ROUTES_READY, "False", route_error.reason, str(route_error))
        if route_error
        else Condition(ROUTES_READY, "True", "RoutesApplied", "traffic split is applied")
    )
    ready_ok = predictor_ready is not None and predictor_ready.status == "True" and not route_error
    ready = Condition(
        READY,
        "True" if ready_ok else "False",
        "Ready" if ready_ok else (routes.reason if route_error else "PredictorNotReady"),
        "InferenceService is ready"
        if ready_ok
        else (
            str(route_error)
            if route_error
            else (predictor_ready.message if predictor_ready else "waiting")
        ),
    )
    planned = {(w.component, w.revision) for w in plan.workloads}
    rollout_spec = isvc.spec.rollout
    health = health_conditions(
        conditions=[*decision.conditions, routes],
        stalled_workloads={
            key: obs.stalled
            for key, obs in workloads.items()
            if key in planned and obs.stalled is not None
        },
        manual_canary=rollout_spec is not None
        and rollout_spec.canary_traffic_percent is not None
        and rollout_spec.canary_traffic_percent < 100,
    )
    conditions = merge_conditions(
        live_conditions,
        [*decision.conditions, routes, ready, *health, *extra_conditions],
        generation,
        now,
    )
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": conditions,
        "revisions": revisions,
        "variants": variants,
        "replicas": sum(w.min_replicas for w in plan.workloads),
        "readyReplicas": sum(o.ready_replicas for o in workloads.values()),
        STATUS_KEY: decision.state.to_status(),
    }
    if state.experiment is not None:
        status["experiment"] = state.experiment.to_status()
    if url:
        status["url"] = url
    return status
