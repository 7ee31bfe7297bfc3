"""The traffic plan: which workloads exist at which size, and how requests reach them.

Limits: reads the rollout state as the canary and variant stages left it and decides
nothing over time; weights are whole percents (the canary's part of the main
predictor's share is rounded, the stable gets the rest, so they always sum to 100).

Workloads: the stable, the canary (at its requested size; a rolled-back one at 0/0),
each variant's serving and pending revision, every draining workload at the size it
had, and with a rollout block the `previous` revision at 0/0 (kept for a fast revert).
Routes: the main predictor gets `100 - sum(variant weights)`, split stable/canary by the
canary's percent; zero-weight backends are left out of the default rule; header matches
and the mirror target a variant's serving revision (a mirror naming no variant is
dropped with a Warning event).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeserve.plan import DEFAULT_COMPONENT, Backend, HeaderRoute, Mirror, TrafficPlan, Workload
from kubeserve.rollout.observation import WorkloadKey
from kubeserve.rollout.policy import Policy, Replicas
from kubeserve.rollout.state import RolloutState
from kubeserve.rollout.transition import Event

MAIN = DEFAULT_COMPONENT


@dataclass(frozen=True)
class Traffic:
    """The plan for the builders, the predictor spec of each of its workloads, and the
    events the routes call for."""

    plan: TrafficPlan
    predictors: Mapping[WorkloadKey, Mapping[str, Any]]
    events: tuple[Event, ...] = ()


def traffic_plan(policy: Policy, state: RolloutState) -> Traffic:
    """Decide the workloads and routes of a state whose stable revision is set."""
    sizes, predictors = _workloads(policy, state)
    workloads = tuple(
        Workload(component=c, revision=r, min_replicas=s.min, max_replicas=s.max)
        for (c, r), s in sorted(sizes.items())
    )
    plan, events = _routes(policy, state, workloads)
    return Traffic(plan, {k: predictors[k] for k in sorted(sizes)}, events)


def _workloads(
    policy: Policy, state: RolloutState
) -> tuple[dict[WorkloadKey, Replicas], dict[WorkloadKey, Mapping[str, Any]]]:
    """Every workload's replica bounds and predictor spec."""
    stable = state.stable
    assert stable is not None
    sizes: dict[WorkloadKey, Replicas] = {}
    predictors: dict[WorkloadKey, Mapping[str, Any]] = {}
    parked: dict[WorkloadKey, Mapping[str, Any]] = {}  # kept at 0 unless draining

    sizes[(MAIN, stable.revision)] = Replicas.of(stable.predictor)
    predictors[(MAIN, stable.revision)] = stable.predictor
    canary = state.canary
    if canary is not None:
        key = (MAIN, canary.revision)
        predictors[key] = canary.predictor
        if canary.phase == "RolledBack":
            parked[key] = canary.predictor
        else:
            sizes[key] = Replicas(canary.min_replicas, canary.max_replicas)
    if state.previous is not None and policy.rollout is not None:
        parked.setdefault((MAIN, state.previous.revision), state.previous.predictor)
    for name, variant in state.variants.items():
        sizes[(name, variant.revision)] = Replicas.of(variant.predictor)
        predictors[(name, variant.revision)] = variant.predictor
        if variant.pending is not None:
            own = Replicas.of(variant.pending.predictor)
            key = (name, variant.pending.revision)
            sizes[key] = Replicas(variant.pending.replicas, max(own.max, variant.pending.replicas))
            predictors[key] = variant.pending.predictor
    for r in state.retiring:
        key = (r.component, r.revision)
        if key not in sizes:
            sizes[key] = Replicas(r.min_replicas, r.max_replicas)
            predictors[key] = r.predictor
    for key, spec in parked.items():
        if key not in sizes:
            sizes[key] = Replicas(0, 0)
            predictors.setdefault(key, spec)
    return sizes, predictors


def _routes(
    policy: Policy, state: RolloutState, workloads: tuple[Workload, ...]
) -> tuple[TrafficPlan, tuple[Event, ...]]:
    """Weighted backends, header routes and the mirror of the plan."""
    stable = state.stable
    assert stable is not None
    main_share = policy.main_weight
    canary = state.canary
    canary_percent = canary.percent if canary is not None else 0
    canary_weight = round(main_share * canary_percent / 100)
    candidates = [Backend(MAIN, stable.revision, main_share - canary_weight)]
    if canary is not None:
        candidates.append(Backend(MAIN, canary.revision, canary_weight))
    header_routes: list[HeaderRoute] = []
    for variant in policy.variants:
        serving = state.variants[variant.name].revision
        candidates.append(Backend(variant.name, serving, variant.weight))
        if variant.headers:
            header_routes.append(HeaderRoute(variant.headers, Backend(variant.name, serving, 100)))
    mirror: Mirror | None = None
    events: tuple[Event, ...] = ()
    if policy.mirror is not None:
        target = state.variants.get(policy.mirror.variant)
        if target is None:
            events = (
                Event(
                    "Warning",
                    "MirrorTargetUnknown",
                    f"mirror names variant {policy.mirror.variant!r}, which does not exist",
                ),
            )
        else:
            mirror = Mirror(
                Backend(policy.mirror.variant, target.revision, 100), policy.mirror.percent
            )
    plan = TrafficPlan(
        workloads=workloads,
        backends=tuple(b for b in candidates if b.weight > 0),
        header_routes=tuple(header_routes),
        mirror=mirror,
    )
    return plan, events
