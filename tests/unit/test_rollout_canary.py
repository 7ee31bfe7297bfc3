"""The canary stage on its own: hand-built states in, one transition out.

The canary rules themselves (manual, progressive, promotion, rollback, revert,
supersede) are covered scenario by scenario through `decide` in
test_rollout_decision.py, whose main-predictor behaviour is exactly this stage; tests
here would only repeat them. What `decide` cannot show is checked here: the stage
leaves its input and the variants alone (decide deep-copies the state before any stage
runs), and one call follows every transition that needs no new facts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubeserve.rollout.analysis import AnalysisMetrics
from kubeserve.rollout.canary import canary_transition
from kubeserve.rollout.observation import Observed, WorkloadObservation
from kubeserve.rollout.policy import Policy
from kubeserve.rollout.revision import revision_hash
from kubeserve.rollout.settings import RolloutSettings
from kubeserve.rollout.state import (
    CanaryStatus,
    RetiringWorkload,
    RevisionStatus,
    RolloutState,
    VariantState,
)
from kubeserve.rollout.transition import Event

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = RolloutSettings(drain_seconds=10.0)
P = "predictor"


def predictor(version: str) -> dict[str, Any]:
    """A predictor spec with 2..4 replicas."""
    return {"model": {"storageUri": f"s3://m/{version}"}, "minReplicas": 2, "maxReplicas": 4}


V1, V2, VB = predictor("v1"), predictor("v2"), predictor("b")
R1, R2, RB = revision_hash(V1), revision_hash(V2), revision_hash(VB)


def ready(**replicas: int) -> Observed:
    """Observed: the main predictor's revisions (by R1/R2 name) Ready with these counts."""
    revisions = {"r1": R1, "r2": R2}
    return Observed(
        workloads={(P, revisions[k]): WorkloadObservation(True, n) for k, n in replicas.items()}
    )


def canary_at(percent: int, **fields: Any) -> RolloutState:
    """Stable R1 and canary R2 at `percent`, its analysis window started at T0."""
    canary = CanaryStatus(
        revision=R2, percent=percent, since=T0, predictor=V2, window_started_at=T0, **fields
    )
    stable = RevisionStatus(revision=R1, percent=100 - percent, since=T0, predictor=V1)
    return RolloutState(stable=stable, canary=canary)


def test_the_stage_leaves_its_input_and_the_variants_alone() -> None:
    """A new revision becomes the canary; variants and their drains are not its business."""
    variants = {"b": VariantState(revision=RB, since=T0, predictor=VB)}
    draining = [
        RetiringWorkload(
            component="b", revision="0ld", min_replicas=1, max_replicas=1, until=T0, predictor={}
        )
    ]
    state = RolloutState(
        stable=RevisionStatus(revision=R1, percent=100, since=T0, predictor=V1),
        variants=variants,
        retiring=draining,
    )
    before = state.to_status()
    spec = {
        "predictor": V2,
        "rollout": {"canaryTrafficPercent": 10},
        "variants": [{"name": "b", "weight": 10, "predictor": predictor("b2")}],
    }
    t = canary_transition(Policy.from_spec(spec), state, ready(r1=2), T0, SETTINGS)
    assert state.to_status() == before
    assert t.state.variants == variants
    assert t.state.retiring == draining
    assert t.events == (
        Event("Normal", "CanaryStarted", f"revision {R2} deploys as a canary of stable {R1}"),
    )
    assert t.state.canary is not None
    assert (t.state.canary.min_replicas, t.state.canary.max_replicas) == (1, 1)
    assert t.progress is not None
    assert t.progress.reason == "CanaryDeploying"


def test_a_passed_last_step_promotes_and_takes_over_in_one_call() -> None:
    """Pass -> Promoting -> Promoted without waiting for another decision, since the
    canary already has the stable's ready count."""
    rollout = {"steps": [10, 25, 60], "interval": "1m", "analysis": {"minRequests": 50}}
    state = canary_at(60, step=2, min_replicas=2, max_replicas=3)
    now = T0 + timedelta(minutes=1)
    observed = Observed(
        workloads=ready(r1=2, r2=2).workloads,
        canary_metrics=AnalysisMetrics(requests=200, errors=0, p99_ms=40.0),
    )
    policy = Policy.from_spec({"predictor": V2, "rollout": rollout})
    before = state.to_status()
    t = canary_transition(policy, state, observed, now, SETTINGS)
    assert state.to_status() == before
    assert [e.reason for e in t.events] == ["AnalysisPassed", "Promoting", "Promoted"]
    assert t.state.canary is None
    assert t.state.stable is not None
    assert (t.state.stable.revision, t.state.stable.percent) == (R2, 100)
    assert t.state.previous is not None
    assert t.state.previous.revision == R1
    (old,) = t.state.retiring  # the old stable drains at its full size
    assert (old.revision, old.min_replicas, old.max_replicas) == (R1, 2, 4)
    assert old.until == now + timedelta(seconds=10)
    assert [h.outcome for h in t.state.history] == ["Promoted"]
    assert t.requeues == (60.0,)


def test_the_last_allowed_failure_rolls_back_and_drains_the_canary_at_its_size() -> None:
    """failureThreshold reached: traffic back to stable, canary parked, history written."""
    rollout = {"steps": [10, 25], "interval": "30s", "analysis": {"failureThreshold": 2}}
    state = canary_at(10, step=0, failed_checks=1, min_replicas=1, max_replicas=1)
    now = T0 + timedelta(seconds=30)
    observed = Observed(
        workloads=ready(r1=2, r2=1).workloads,
        canary_metrics=AnalysisMetrics(requests=100, errors=5),
    )
    policy = Policy.from_spec({"predictor": V2, "rollout": rollout})
    before = state.to_status()
    t = canary_transition(policy, state, observed, now, SETTINGS)
    assert state.to_status() == before
    message = "error rate 0.05 > max 0.01 at step 10% (2 failed checks)"
    assert t.events == (
        Event("Warning", "RolledBack", f"revision {R2} rolled back to {R1}: {message}"),
    )
    canary = t.state.canary
    assert canary is not None
    assert (canary.phase, canary.percent, canary.min_replicas, canary.max_replicas) == (
        "RolledBack",
        0,
        0,
        0,
    )
    assert canary.message == message
    assert t.state.stable is not None
    assert t.state.stable.percent == 100
    (parked,) = t.state.retiring
    assert (parked.revision, parked.min_replicas, parked.max_replicas) == (R2, 1, 1)
    assert [(h.revision, h.outcome, h.message) for h in t.state.history] == [
        (R2, "RolledBack", message)
    ]
