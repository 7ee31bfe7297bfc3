"""One reconcile pass: decide -> build -> apply what differs -> prune -> one status patch.

The pass is idempotent: run twice on an unchanged cluster, the second run computes the
same children and the same status and sends no request at all. Live objects come from
the kopf indices (see :mod:`.handlers`); only owned children are ever pruned.

The status patch carries the resourceVersion the decision was made from. When the
InferenceService changed meanwhile (a spec edit, or the index was behind), the API
server answers 409; the pass then reads the object, decides again from it and applies
that, so a status never mixes two rollout states and no Event is posted for a decision
that was not written. Events are posted after the status; one that cannot be posted is
logged and does not fail the pass (the status already says what happened).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kubeserve.api.v1alpha1 import InferenceService
from kubeserve.builders import RouteUnsupported, build_children, url
from kubeserve.builders.meta import ROUTE_COMPONENT
from kubeserve.config import OperatorConfig
from kubeserve.controller.drift import merge_patch, needs_apply, prune_none, stamp
from kubeserve.controller.health import DEADLINE_REASON
from kubeserve.controller.kube import ConflictError, Kube
from kubeserve.controller.metrics import OperatorMetrics
from kubeserve.controller.state import Controller
from kubeserve.controller.status import desired_status, merge_conditions
from kubeserve.controller.workqueue import Key
from kubeserve.monitoring.drift import DriftDecision, DriftPolicy, DriftState, decide_drift
from kubeserve.monitoring.psi import read_psi
from kubeserve.monitoring.webhook import WebhookError, drift_event
from kubeserve.monitoring.webhook import send as send_webhook
from kubeserve.rollout.decision import (
    Condition,
    MetricsRequest,
    Observed,
    Policy,
    Reading,
    RolloutSettings,
    WorkloadKey,
    WorkloadObservation,
    decide,
    experiment_request,
    metrics_request,
)
from kubeserve.rollout.metrics import read_canary_metrics, read_experiment_counters
from kubeserve.rollout.state import RolloutState
from kubeserve_runtime.contract import LABEL_COMPONENT, LABEL_REVISION, LABEL_VARIANT

logger = logging.getLogger(__name__)

ObjectKey = tuple[str, str, str]
"""(apiVersion, kind, name) of a child in the InferenceService's namespace."""

DECIDE_ATTEMPTS = 3
"""Decisions per pass when the status write meets a newer object (409) each time; then
the pass fails and the work queue retries it with backoff."""

CREATED = ""
"""Stands for "did not exist" among the resourceVersions a write superseded."""


def resource_version(obj: Mapping[str, Any] | None) -> str:
    """metadata.resourceVersion, or :data:`CREATED` for an object that does not exist."""
    if obj is None:
        return CREATED
    return str(obj.get("metadata", {}).get("resourceVersion") or CREATED)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware."""
    return dt.datetime.now(dt.UTC)


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    """Identity of a child object."""
    return (str(obj["apiVersion"]), str(obj["kind"]), str(obj["metadata"]["name"]))


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """Whether `obj` has a controller owner reference to the object with `uid`."""
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("controller") for r in refs)


def observe_workloads(
    children: Iterable[Mapping[str, Any]],
) -> dict[WorkloadKey, WorkloadObservation]:
    """Readiness of each owned Deployment, keyed by (component, revision)."""
    found: dict[WorkloadKey, WorkloadObservation] = {}
    for obj in children:
        if obj.get("kind") != "Deployment":
            continue
        labels = obj["metadata"].get("labels") or {}
        key = (labels.get(LABEL_VARIANT, ""), labels.get(LABEL_REVISION, ""))
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        wanted = int(spec.get("replicas", 1))
        ready_replicas = int(status.get("readyReplicas") or 0)
        available = int(status.get("availableReplicas") or 0)
        rolled_out = (
            int(status.get("observedGeneration") or 0)
            >= int(obj["metadata"].get("generation") or 0)
            and int(status.get("updatedReplicas") or 0) >= wanted
        )
        found[key] = WorkloadObservation(
            ready=rolled_out and available >= wanted,
            ready_replicas=ready_replicas,
            stalled=past_deadline(status),
        )
    return found


def past_deadline(status: Mapping[str, Any]) -> str | None:
    """The message of a Deployment status whose rollout exceeded its progress deadline."""
    for cond in status.get("conditions") or ():
        if (
            cond.get("type") == "Progressing"
            and cond.get("status") == "False"
            and cond.get("reason") == DEADLINE_REASON
        ):
            return str(cond.get("message") or DEADLINE_REASON)
    return None


def failure_message(exc: Exception) -> str:
    """A one-line cause for a status message; the API server's own message when it has one."""
    body = getattr(exc, "body", None)
    if isinstance(body, str | bytes):
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) and decoded.get("message"):
            return f"{getattr(exc, 'status', '')} {decoded['message']}".strip()[:1024]
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:1024]


def keep_autoscaled_replicas(
    desired: list[dict[str, Any]], live: Mapping[ObjectKey, Mapping[str, Any]]
) -> None:
    """Give HPA-managed Deployments the live replica count, clamped to the HPA's bounds."""
    bounds = {
        o["spec"]["scaleTargetRef"]["name"]: (o["spec"]["minReplicas"], o["spec"]["maxReplicas"])
        for o in desired
        if o["kind"] == "HorizontalPodAutoscaler"
    }
    for obj in desired:
        name = obj["metadata"]["name"]
        if obj["kind"] != "Deployment" or name not in bounds:
            continue
        low, high = bounds[name]
        current = (live.get(object_key(obj)) or {}).get("spec", {}).get("replicas")
        obj["spec"]["replicas"] = low if current is None else max(low, min(high, int(current)))


def rollout_settings(config: OperatorConfig) -> RolloutSettings:
    """The rollout decision's operator-wide settings from the operator config."""
    return RolloutSettings(history_limit=config.history_limit)


def unwanted(
    live: Mapping[ObjectKey, Mapping[str, Any]],
    desired: Iterable[Mapping[str, Any]],
    *,
    keep_routes: bool = False,
) -> list[ObjectKey]:
    """Owned children to prune, sorted; `keep_routes` spares the live route objects.

    After a RouteUnsupported the builders leave the routes out; the last routes that
    worked keep serving (RoutesReady=False explains why they are not updated) instead
    of being deleted, which would cut all traffic.
    """
    wanted = {object_key(o) for o in desired}
    return [
        okey
        for okey in sorted(live)
        if okey not in wanted
        and not (
            keep_routes
            and (live[okey].get("metadata", {}).get("labels") or {}).get(LABEL_COMPONENT)
            == ROUTE_COMPONENT
        )
    ]


@dataclass
class Reconciler:
    """Holds the collaborators of the reconcile pass."""

    kube: Kube
    config: OperatorConfig
    metrics: OperatorMetrics
    clock: Callable[[], dt.datetime] = utcnow
    settings: RolloutSettings | None = None
    """Rollout settings; derived from `config` (its history limit) when not given."""
    _writes: dict[tuple[str, ObjectKey], tuple[frozenset[str], dict[str, Any]]] = field(
        default_factory=dict
    )
    """Read-your-writes: (namespace, object) -> (resourceVersions known to be older than
    what we hold, the newest version we wrote or read). The watch-fed indices lag behind
    our own writes; while the index shows one of those older versions, the pass uses
    ours, so it neither repeats writes nor events. A chain of writes keeps every version
    it replaced, so an index that catches up one step at a time is never mistaken for
    news."""

    def __post_init__(self) -> None:
        if self.settings is None:
            self.settings = rollout_settings(self.config)

    def _fresh(self, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """`obj` from the index, or our newer write of it while the index is stale."""
        wkey = (namespace, object_key(obj))
        written = self._writes.get(wkey)
        if written is None:
            return obj
        if resource_version(obj) in written[0]:
            return written[1]
        del self._writes[wkey]
        return obj

    def _forget(self, key: Key) -> None:
        """Drop remembered writes of a deleted InferenceService and its children."""
        namespace, name = key
        self.metrics.forget(namespace, name)
        for wkey in [k for k in self._writes if k[0] == namespace]:
            obj_name = wkey[1][2]
            if obj_name == name or obj_name.startswith(f"{name}-"):
                del self._writes[wkey]

    def _remember(
        self, namespace: str, before: Mapping[str, Any] | None, after: dict[str, Any]
    ) -> None:
        """Record a write (or a fresh read) so no pass acts on the stale index entry."""
        wkey = (namespace, object_key(after))
        entry = self._writes.get(wkey)
        older = entry[0] if entry is not None else frozenset()
        self._writes[wkey] = (older | {resource_version(before)}, after)

    async def reconcile(self, controller: Controller, key: Key) -> float | None:
        """Reconcile one InferenceService; return seconds until the next timed pass."""
        indexed = controller.isvc(key)
        self.metrics.managed.set(controller.managed_count())
        if indexed is None:
            self._forget(key)
            return None
        namespace, name = key
        started = time.perf_counter()
        isvc = self._fresh(namespace, indexed)
        try:
            for attempt in range(1, DECIDE_ATTEMPTS + 1):
                try:
                    delay = await self._pass(isvc, controller.children(key))
                    break
                except ConflictError:
                    if attempt == DECIDE_ATTEMPTS:
                        raise
                    logger.info("%s/%s changed during the pass; deciding again", *key)
                    fresh = await self.kube.get_isvc(namespace, name)
                    if fresh is None:
                        return None
                    self._remember(namespace, isvc, fresh)
                    isvc = self._fresh(namespace, indexed)
        except Exception as exc:
            self.metrics.reconciles.labels(result="error").inc()
            self.metrics.errors.labels(error=type(exc).__name__).inc()
            await self._report_failure(isvc, exc)
            raise
        finally:
            self.metrics.duration.observe(time.perf_counter() - started)
        self.metrics.reconciles.labels(result="success").inc()
        timer = self.config.reconcile_interval_seconds
        return timer if delay is None else min(delay, timer)

    async def _pass(self, isvc: dict[str, Any], children: list[dict[str, Any]]) -> float | None:
        """One decision from `isvc` (the freshest version known) and everything it implies.

        The object is parsed here, once: the validated model for the builders and the
        status, the rollout policy for the metrics request and the decision. The raw
        object stays for what must be exactly as stored: the predictor specs the policy
        hashes into revisions, the stored status, the resourceVersion of the writes.
        """
        service = InferenceService.model_validate(isvc)
        policy = Policy.from_spec(isvc["spec"])
        stored: dict[str, Any] = isvc.get("status") or {}
        namespace, name = service.metadata.namespace, service.metadata.name
        uid = str(service.metadata.uid)
        owned = [self._fresh(namespace, c) for c in children if owned_by(c, uid)]
        for (ns, okey), (older, obj) in list(self._writes.items()):
            if (
                ns == namespace
                and CREATED in older
                and okey[1] != "InferenceService"
                and (owned_by(obj, uid) and okey not in {object_key(c) for c in owned})
            ):
                owned.append(obj)
        now = self.clock()
        state = RolloutState.from_status(stored)
        workloads = observe_workloads(owned)
        request = metrics_request(policy, state, now)
        reading = await self._read_metrics(isvc, request) if request else None
        wanted = experiment_request(policy, state, now)
        arms = await read_experiment_counters(isvc, wanted, self.config, now) if wanted else None
        observed = Observed(workloads, reading, arms)
        decision = decide(policy, state, observed, now, self.settings)

        route_error: RouteUnsupported | None = None
        try:
            desired = build_children(service, decision.plan, decision.predictors, self.config)
        except RouteUnsupported as exc:
            route_error = exc
            desired = build_children(
                service, decision.plan, decision.predictors, self.config, routes=False
            )
        desired = [stamp(obj) for obj in desired]
        live = {object_key(c): c for c in owned}
        keep_autoscaled_replicas(desired, live)
        for obj in desired:
            if needs_apply(obj, live.get(object_key(obj))):
                verb = "Updated" if object_key(obj) in live else "Created"
                before = live.get(object_key(obj))
                self._remember(namespace, before, await self.kube.apply(obj))
                logger.info("%s %s %s/%s", verb, obj["kind"], namespace, obj["metadata"]["name"])
        for okey in unwanted(live, desired, keep_routes=route_error is not None):
            await self.kube.delete(okey[0], okey[1], namespace, okey[2])
            self._writes.pop((namespace, okey), None)
            logger.info("Deleted %s %s/%s (no longer desired)", okey[1], namespace, okey[2])

        stable = decision.state.stable
        drift = await self._drift(isvc, service, stable.revision if stable else None, stored, now)
        where = url(service, self.config)
        status = desired_status(
            service,
            stored.get("conditions"),
            decision,
            workloads,
            where,
            route_error,
            now,
            extra_conditions=(drift.condition,) if drift else (),
        )
        if drift is not None:
            status["drift"] = drift.state.to_status()
        patch = merge_patch(stored, prune_none(status))
        if patch:
            written = await self.kube.patch_status(namespace, name, patch, resource_version(isvc))
            self._remember(namespace, isvc, written)
        self.metrics.record_conditions(namespace, name, status["conditions"])
        for event in (*decision.events, *(drift.events if drift else ())):
            await self._post(isvc, event.type, event.reason, event.message)
        delays = [
            d
            for d in (decision.requeue_after, drift.requeue_after if drift else None)
            if d is not None
        ]
        return min(delays) if delays else None

    async def _drift(
        self,
        isvc: Mapping[str, Any],
        service: InferenceService,
        revision: str | None,
        stored: Mapping[str, Any],
        now: dt.datetime,
    ) -> DriftDecision | None:
        """Read the stable revision's PSI, decide DriftDetected and tell the webhook
        (before the status write, which records that it was told)."""
        monitoring = service.spec.monitoring
        if monitoring is None or monitoring.drift is None or revision is None:
            return None
        policy = DriftPolicy.from_spec(monitoring.drift)
        reading = await read_psi(isvc, revision, self.config, list_pods=self.kube.list_pods)
        previous = DriftState.from_status(stored.get("drift"))
        outcome = decide_drift(policy, previous, revision, reading, now)
        if not outcome.notify or policy.webhook is None:
            return outcome
        meta = service.metadata
        event = drift_event(meta.namespace, meta.name, revision, policy.for_seconds, outcome.notify)
        try:
            await send_webhook(policy.webhook, event)
        except WebhookError as exc:
            await self._post(isvc, "Warning", "DriftWebhookFailed", f"{exc}; retrying")
            return outcome
        logger.info("%s/%s: drift webhook told (%s)", meta.namespace, meta.name, event["id"])
        told = outcome.state.model_copy(update={"notified": True})
        return replace(outcome, state=told)

    async def _post(self, isvc: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Post one Event; a failure is logged, never fatal: the decision is already in
        the status, and failing the pass would show Ready=False for a working service."""
        meta = isvc["metadata"]
        try:
            await self.kube.event(isvc, type_, reason, message)
        except Exception as exc:
            logger.warning(
                "%s/%s: could not post the %s Event (%s): %s",
                meta["namespace"],
                meta["name"],
                reason,
                failure_message(exc),
                message,
            )
            return
        logger.info("%s/%s: %s: %s", meta["namespace"], meta["name"], reason, message)

    async def _report_failure(self, isvc: dict[str, Any], exc: Exception) -> None:
        """Show a failed pass on the object: Ready=False, reason ReconcileError, the cause.

        `isvc` is the freshest version known; a 409 (it changed since) skips the report:
        the pass that the change triggers decides again.
        """
        namespace, name = str(isvc["metadata"]["namespace"]), str(isvc["metadata"]["name"])
        live = (isvc.get("status") or {}).get("conditions") or []
        failed = Condition("Ready", "False", "ReconcileError", failure_message(exc))
        others = [c for c in live if c.get("type") != "Ready"]
        merged = merge_conditions(live, [failed], isvc["metadata"].get("generation"), self.clock())
        conditions = sorted([*others, *merged], key=lambda c: str(c.get("type")))
        self.metrics.record_conditions(namespace, name, conditions)
        if conditions == live:
            return
        try:
            result = await self.kube.patch_status(
                namespace, name, {"conditions": conditions}, resource_version(isvc)
            )
        except Exception:
            logger.warning("Could not report the failure on %s/%s", namespace, name, exc_info=True)
            return
        self._remember(namespace, isvc, result)

    async def _read_metrics(self, isvc: Mapping[str, Any], request: MetricsRequest) -> Reading:
        """Canary metrics for the analysis (Prometheus, or the canary pods' /metrics)."""
        return await read_canary_metrics(isvc, request, self.config, list_pods=self.kube.list_pods)
