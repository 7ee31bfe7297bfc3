"""What the operator observes before a decision, and which canary metrics it must fetch.

Limits: only three kinds of fact reach the decision: each workload's Deployment
readiness, one reading of the canary's metrics, and the experiment arms' counters.
Everything else the decision knows comes from the spec and the stored state, so a
decision replays exactly from these values.

:func:`metrics_request` runs before the decision: metrics are wanted whenever a canary
with analysis is progressing, not only when a check is due, because the reading taken
when traffic moves becomes the baseline of the next window (pod scrapes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from kubeserve.experiment.totals import Totals
from kubeserve.plan import DEFAULT_COMPONENT
from kubeserve.rollout.analysis import AnalysisMetrics, MetricsUnavailable, Snapshot
from kubeserve.rollout.policy import Policy
from kubeserve.rollout.revision import revision_hash
from kubeserve.rollout.state import RolloutState

ArmCounters = Mapping[str, Totals] | MetricsUnavailable
"""Experiment arms' sufficient statistics since the experiment started (arm name -> totals,
`predictor` for the main one, randomized traffic only), or why they could not be read."""

Reading = AnalysisMetrics | Snapshot | MetricsUnavailable
"""Canary metrics: a Prometheus answer over the window, a pod scrape, or a failure."""

WorkloadKey = tuple[str, str]
"""(component, revision)."""


@dataclass(frozen=True)
class WorkloadObservation:
    """What the cluster shows for one workload's Deployment."""

    ready: bool
    """The Deployment finished rolling out and is Available."""
    ready_replicas: int
    stalled: str | None = None
    """The Deployment controller's message when it exceeded its progress deadline."""


@dataclass(frozen=True)
class Observed:
    """Facts the operator gathered before deciding."""

    workloads: Mapping[WorkloadKey, WorkloadObservation] = field(default_factory=dict)
    canary_metrics: Reading | None = None
    """Metrics of the canary, when :func:`metrics_request` asked for them."""
    experiment: ArmCounters | None = None
    """The experiment arms' counters, when :func:`experiment_request` asked for them."""

    def ready_replicas(self, key: WorkloadKey) -> int:
        """Ready replicas of a workload (0 when it was not seen)."""
        seen = self.workloads.get(key)
        return seen.ready_replicas if seen is not None else 0

    def ready(self, key: WorkloadKey, replicas: int) -> bool:
        """Whether the workload is Ready with at least `replicas` ready replicas."""
        seen = self.workloads.get(key)
        return seen is not None and seen.ready and seen.ready_replicas >= replicas


@dataclass(frozen=True)
class MetricsRequest:
    """Which canary to measure, and over how long a window (for Prometheus queries)."""

    component: str
    revision: str
    window_seconds: float
    custom_query: str | None = None
    quality_baseline: str | None = None
    """When the analysis reads feedback: the stable revision, compared with the canary."""


def metrics_request(policy: Policy, state: RolloutState, now: datetime) -> MetricsRequest | None:
    """Return what to measure before the decision, or None when no analysis runs."""
    canary = state.canary
    rollout = policy.rollout
    if canary is None or canary.phase != "Progressing" or rollout is None:
        return None
    if rollout.analysis is None or revision_hash(policy.predictor) != canary.revision:
        return None
    started = canary.window_started_at
    window = rollout.interval_seconds if started is None else (now - started).total_seconds()
    custom = rollout.analysis.custom
    stable = state.stable
    return MetricsRequest(
        component=DEFAULT_COMPONENT,
        revision=canary.revision,
        window_seconds=max(1.0, window),
        custom_query=None if custom is None else custom.query,
        quality_baseline=(
            (stable.revision if stable is not None else "")
            if rollout.analysis.quality_gated
            else None
        ),
    )


@dataclass(frozen=True)
class ExperimentRequest:
    """Which arms of the experiment to count, since when, and which metric."""

    metric: str
    arms: tuple[WorkloadKey, ...]
    """(arm name, serving revision): the main predictor first, then weighted variants."""
    since: datetime
    custom: tuple[str, str] | None = None
    """A custom metric's (numerator, denominator) PromQL templates."""


def experiment_request(
    policy: Policy, state: RolloutState, now: datetime
) -> ExperimentRequest | None:
    """Return the counters the experiment stage reads, or None when no look is due.

    The arms and start are the stored experiment's (the stage restarts it, with new arms,
    when the spec or a revision changes, and asks again on the next pass); looks are one
    rollout interval apart, as the stage takes them.
    """
    record, spec = state.experiment, policy.experiment
    if record is None or spec is None:
        return None
    looked = record.looked_at
    if looked is not None and (now - looked).total_seconds() < policy.interval_seconds:
        return None
    custom = spec.custom
    return ExperimentRequest(
        metric=record.metric,
        arms=tuple((a.name, a.revision or "") for a in record.arms),
        since=record.started_at,
        custom=None if custom is None else (custom.numerator, custom.denominator),
    )
