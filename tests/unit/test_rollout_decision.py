"""The rollout decision function, scenario by scenario.

Every scenario runs through :class:`Run`, which stores the state the way the operator
does (JSON in `status.rollout`) and reads it back before each decision, so each test
also proves that a restarted operator resumes from status alone. The cluster's answer
is modelled as "every workload of the previous plan is Ready at its minimum size"
unless a test says otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubeserve.plan import Backend, HeaderRoute, Mirror
from kubeserve.rollout.analysis import AnalysisMetrics, MetricsUnavailable, PodCounters, Quality
from kubeserve.rollout.decision import (
    Condition,
    Decision,
    Observed,
    Policy,
    Reading,
    RolloutSettings,
    WorkloadObservation,
    decide,
    metrics_request,
)
from kubeserve.rollout.revision import revision_hash
from kubeserve.rollout.state import STATUS_KEY, QualityStatus, RolloutState

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DRAIN = 10.0
Key = tuple[str, str]


def predictor(version: str, min_replicas: int = 2, max_replicas: int = 4) -> dict[str, Any]:
    """A predictor spec (only its hash and replica bounds matter to the decision)."""
    return {
        "model": {"modelFormat": {"name": "sklearn"}, "storageUri": f"s3://models/iris/{version}"},
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
    }


V1, V2, V3 = predictor("v1"), predictor("v2"), predictor("v3")
R1, R2, R3 = revision_hash(V1), revision_hash(V2), revision_hash(V3)


def isvc_spec(pred: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """An InferenceService spec with `pred` as main predictor."""
    return {"predictor": dict(pred), **extra}


def ok(requests: float = 200, errors: float = 0, p99_ms: float = 40.0) -> AnalysisMetrics:
    """A Prometheus-style reading over the window."""
    return AnalysisMetrics(requests=requests, errors=errors, p99_ms=p99_ms)


@dataclass
class Run:
    """Drives decisions over time, keeping state only as JSON status, like the operator."""

    spec: dict[str, Any]
    now: datetime = T0
    status: dict[str, Any] = field(default_factory=dict)
    last: Decision | None = None

    def state(self) -> RolloutState:
        """The state as a restarted operator would read it."""
        return RolloutState.from_status(json.loads(json.dumps(self.status)))

    def step(
        self,
        after: float = 0.0,
        metrics: Reading | None = None,
        ready: Mapping[Key, int] | None = None,
    ) -> Decision:
        """Advance the clock by `after` seconds and decide once."""
        self.now += timedelta(seconds=after)
        if ready is None:
            ready = {}
            if self.last is not None:
                ready = {
                    (w.component, w.revision): w.min_replicas
                    for w in self.last.plan.workloads
                    if w.max_replicas > 0
                }
        observed = Observed(
            workloads={
                k: WorkloadObservation(ready=True, ready_replicas=n) for k, n in ready.items()
            },
            canary_metrics=metrics,
        )
        decision = decide(
            Policy.from_spec(self.spec),
            self.state(),
            observed,
            self.now,
            RolloutSettings(drain_seconds=DRAIN),
        )
        self.status = {STATUS_KEY: decision.state.to_status()}
        self.last = decision
        return decision


def weights(d: Decision) -> dict[Key, int]:
    """Default-rule weights by (component, revision)."""
    return {(b.component, b.revision): b.weight for b in d.plan.backends}


def sizes(d: Decision) -> dict[Key, tuple[int, int]]:
    """Workload replica bounds by (component, revision)."""
    return {(w.component, w.revision): (w.min_replicas, w.max_replicas) for w in d.plan.workloads}


def cond(d: Decision, kind: str) -> Condition:
    """The condition of one type."""
    (found,) = [c for c in d.conditions if c.type == kind]
    return found


def reasons(d: Decision) -> list[str]:
    """Reasons of the events emitted."""
    return [e.reason for e in d.events]


P = "predictor"


def test_fresh_create_serves_first_revision() -> None:
    run = Run(isvc_spec(V1))
    d = run.step()
    assert sizes(d) == {(P, R1): (2, 4)}
    assert weights(d) == {(P, R1): 100}
    assert d.predictors == {(P, R1): V1}
    assert cond(d, "PredictorReady").status == "False"
    assert cond(d, "RolloutSucceeded").status == "True"
    assert cond(d, "RolloutProgressing").status == "False"
    assert cond(d, "RolledBack").status == "False"
    assert reasons(d) == ["RevisionCreated"]
    assert d.state.stable is not None
    assert d.state.stable.revision == R1
    assert [h.outcome for h in d.state.history] == ["Promoted"]
    assert d.requeue_after is None

    d = run.step(after=5)
    assert cond(d, "PredictorReady") == Condition(
        "PredictorReady", "True", "Ready", f"predictor {R1}: 2/2 ready"
    )
    assert d.events == ()


def test_spec_change_without_rollout_replaces_without_dropping_requests() -> None:
    run = Run(isvc_spec(V1))
    run.step()
    run.step(after=1)
    run.spec = isvc_spec(V2)
    # The stable was scaled out to 3 by its HPA: the newcomer must match that first.
    d = run.step(after=1, ready={(P, R1): 3})
    assert sizes(d) == {(P, R1): (2, 4), (P, R2): (3, 4)}
    assert weights(d) == {(P, R1): 100}
    assert cond(d, "RolloutProgressing").reason == "Promoting"
    assert "Promoting" in reasons(d)

    d = run.step(after=5, ready={(P, R1): 3, (P, R2): 2})  # not enough yet
    assert weights(d) == {(P, R1): 100}

    d = run.step(after=5, ready={(P, R1): 3, (P, R2): 3})
    assert weights(d) == {(P, R2): 100}
    assert sizes(d) == {(P, R1): (2, 4), (P, R2): (2, 4)}  # old one drains at full size
    assert reasons(d) == ["Promoted"]
    assert d.requeue_after == DRAIN
    assert cond(d, "RolloutProgressing").reason == "Draining"
    assert cond(d, "RolloutSucceeded").status == "True"

    d = run.step(after=DRAIN)
    assert sizes(d) == {(P, R2): (2, 4)}  # pruned: no rollout block keeps no previous
    assert d.state.previous is not None
    assert d.state.previous.revision == R1
    assert cond(d, "RolloutProgressing").reason == "Complete"
    assert d.requeue_after is None


def start_manual_canary(percent: int = 10) -> Run:
    """Stable R1 Ready, then R2 applied as a manual canary of `percent`."""
    run = Run(isvc_spec(V1, rollout={"canaryTrafficPercent": percent}))
    run.step()
    run.step(after=1)
    run.spec = isvc_spec(V2, rollout={"canaryTrafficPercent": percent})
    return run


def test_manual_canary_ten_percent_gives_ninety_ten() -> None:
    run = start_manual_canary(10)
    d = run.step(after=1)
    assert reasons(d) == ["CanaryStarted"]
    assert weights(d) == {(P, R1): 100}  # canary not Ready yet
    assert sizes(d) == {(P, R1): (2, 4), (P, R2): (1, 1)}  # ceil(2*.1)=1, ceil(4*.1)=1
    assert cond(d, "RolloutProgressing").reason == "CanaryDeploying"

    d = run.step(after=5)
    assert weights(d) == {(P, R1): 90, (P, R2): 10}
    assert sizes(d)[(P, R1)] == (2, 4)  # stable keeps full capacity
    assert reasons(d) == ["CanaryWeight"]
    assert d.state.canary is not None
    assert d.state.canary.percent == 10
    assert d.state.stable is not None
    assert d.state.stable.percent == 90
    assert d.predictors[(P, R1)] == V1  # the builders still get the stable's spec
    assert d.predictors[(P, R2)] == V2
    assert cond(d, "RolloutProgressing").status == "True"
    assert cond(d, "RolloutSucceeded").reason == "InProgress"

    d = run.step(after=30)  # manual canary without analysis: nothing changes on its own
    assert weights(d) == {(P, R1): 90, (P, R2): 10}
    assert d.events == ()
    assert d.requeue_after is None


def test_manual_canary_share_sizes_the_canary() -> None:
    run = start_manual_canary(60)
    run.step(after=1)
    d = run.step(after=1)
    assert sizes(d)[(P, R2)] == (2, 3)  # ceil(2*.6)=2, ceil(4*.6)=3
    assert weights(d) == {(P, R1): 40, (P, R2): 60}


@pytest.mark.parametrize(
    "promoting_rollout",
    [None, {}, {"canaryTrafficPercent": 100}],
    ids=["rollout-removed", "percent-removed", "percent-100"],
)
def test_promotion_waits_for_full_capacity_then_scales_old_down(
    promoting_rollout: dict[str, Any] | None,
) -> None:
    run = start_manual_canary(10)
    run.step(after=1)
    run.step(after=1)
    extra = {} if promoting_rollout is None else {"rollout": promoting_rollout}
    run.spec = isvc_spec(V2, **extra)
    d = run.step(after=1, ready={(P, R1): 2, (P, R2): 1})
    assert weights(d) == {(P, R1): 90, (P, R2): 10}  # traffic waits
    assert sizes(d) == {(P, R1): (2, 4), (P, R2): (2, 4)}
    assert cond(d, "RolloutProgressing").reason == "Promoting"

    d = run.step(after=5, ready={(P, R1): 2, (P, R2): 2})
    assert weights(d) == {(P, R2): 100}
    assert sizes(d)[(P, R1)] == (2, 4)  # scaled down only after the drain
    assert [h.outcome for h in d.state.history] == ["Promoted", "Promoted"]

    d = run.step(after=DRAIN)
    expected_old = {} if promoting_rollout is None else {(P, R1): (0, 0)}
    assert sizes(d) == {(P, R2): (2, 4), **expected_old}
    assert cond(d, "RolloutSucceeded").status == "True"
    assert cond(d, "RolloutProgressing").status == "False"


PROGRESSIVE: dict[str, Any] = {
    "steps": [10, 25, 60],
    "interval": "1m",
    "analysis": {"maxErrorRate": 0.01, "maxLatencyP99Ms": 250, "minRequests": 50},
}


def start_progressive(rollout: Mapping[str, Any] = PROGRESSIVE) -> Run:
    """Stable R1 Ready, then R2 applied with a progressive rollout; canary at step 1."""
    run = Run(isvc_spec(V1, rollout=dict(rollout)))
    run.step()
    run.step(after=1)
    run.spec = isvc_spec(V2, rollout=dict(rollout))
    run.step(after=1)
    d = run.step(after=5)
    assert weights(d)[(P, R2)] == rollout["steps"][0]
    return run


def test_progressive_rollout_passes_every_step_then_promotes() -> None:
    run = start_progressive()
    state = run.state()
    assert state.canary is not None
    assert state.canary.step == 0
    assert run.last is not None
    assert run.last.requeue_after == 60
    assert metrics_request(Policy.from_spec(run.spec), state, run.now) is not None

    d = run.step(after=30, metrics=ok())  # not due yet: the reading is not judged
    assert weights(d) == {(P, R1): 90, (P, R2): 10}
    assert d.requeue_after == 30
    assert "next check at 2025-03-01T12:01:07Z" in cond(d, "RolloutProgressing").message
    again = run.step(after=10, metrics=ok())  # an idle pass computes the same status
    assert again.conditions == d.conditions
    assert again.state == d.state

    d = run.step(after=30, metrics=ok())
    # 25% needs ceil(2*.25)=1 replica, which the canary already has: traffic moves now.
    assert reasons(d) == ["AnalysisPassed", "CanaryWeight"]
    assert weights(d) == {(P, R1): 75, (P, R2): 25}
    assert "25% (step 2 of 3)" in d.events[1].message
    assert d.requeue_after == 60

    d = run.step(after=60, metrics=ok())
    assert reasons(d) == ["AnalysisPassed"]
    assert sizes(d)[(P, R2)] == (2, 3)  # 60%: ceil(2*.6)=2, ceil(4*.6)=3
    assert weights(d) == {(P, R1): 75, (P, R2): 25}  # waits for the second replica
    assert cond(d, "RolloutProgressing").reason == "CanaryScaling"
    d = run.step(after=1, metrics=ok())
    assert reasons(d) == ["CanaryWeight"]
    assert weights(d) == {(P, R1): 40, (P, R2): 60}

    # Last step passes while the stable's HPA runs 3 replicas: promotion waits for 3.
    d = run.step(after=60, metrics=ok(), ready={(P, R1): 3, (P, R2): 2})
    assert reasons(d) == ["AnalysisPassed", "Promoting"]
    assert sizes(d)[(P, R2)] == (3, 4)
    assert weights(d) == {(P, R1): 40, (P, R2): 60}
    assert (
        metrics_request(Policy.from_spec(run.spec), run.state(), run.now) is None
    )  # no analysis while promoting

    d = run.step(after=5, ready={(P, R1): 3, (P, R2): 3})
    assert weights(d) == {(P, R2): 100}
    assert reasons(d) == ["Promoted"]
    d = run.step(after=DRAIN)
    assert sizes(d) == {(P, R1): (0, 0), (P, R2): (2, 4)}
    assert cond(d, "RolloutSucceeded") == Condition(
        "RolloutSucceeded", "True", "Stable", f"revision {R2} serves the predictor"
    )


def test_progressive_without_analysis_block_uses_the_default_checks() -> None:
    run = start_progressive({"steps": [20, 60], "interval": "30s"})
    d = run.step(after=30)
    assert d.events == ()  # due, but no metrics brought: no verdict
    d = run.step(metrics=ok(requests=9))
    assert "waiting for traffic: 9 of 10 requests" in cond(d, "RolloutProgressing").message
    d = run.step(after=30, metrics=ok(requests=10))
    assert reasons(d) == ["AnalysisPassed"]
    d = run.step(after=1)
    assert weights(d) == {(P, R1): 40, (P, R2): 60}
    d = run.step(after=30, metrics=ok(requests=1000, errors=11))  # default max error rate 0.01
    assert reasons(d) == ["AnalysisFailed"]


@pytest.mark.parametrize(
    ("reading", "message"),
    [
        (
            ok(requests=100, errors=12),
            "error rate 0.12 > max 0.01 at step 10% (1 failed check)",
        ),
        (
            ok(requests=100, p99_ms=310),
            "p99 latency 310ms > max 250ms at step 10% (1 failed check)",
        ),
        (
            ok(requests=100, errors=5, p99_ms=900),
            "error rate 0.05 > max 0.01; p99 latency 900ms > max 250ms at step 10% "
            "(1 failed check)",
        ),
        (
            MetricsUnavailable("GET http://10.0.0.7:8080/metrics: connection refused"),
            "metrics unavailable: GET http://10.0.0.7:8080/metrics: connection refused "
            "at step 10% (1 failed check)",
        ),
    ],
    ids=["error-rate", "latency", "both", "unavailable"],
)
def test_failed_analysis_rolls_back_with_measured_values(reading: Reading, message: str) -> None:
    rollout = {**PROGRESSIVE, "analysis": {**PROGRESSIVE["analysis"], "failureThreshold": 1}}
    run = start_progressive(rollout)
    d = run.step(after=60, metrics=reading)
    assert weights(d) == {(P, R1): 100}
    assert sizes(d)[(P, R2)] == (1, 1)  # drains first ...
    assert cond(d, "RolledBack") == Condition("RolledBack", "True", "AnalysisFailed", message)
    assert cond(d, "RolloutProgressing").reason == "RolledBack"
    assert cond(d, "RolloutSucceeded").status == "False"
    (event,) = d.events
    assert (event.type, event.reason) == ("Warning", "RolledBack")
    assert message in event.message
    assert d.state.history[-1].outcome == "RolledBack"
    assert d.state.history[-1].message == message

    d = run.step(after=DRAIN)
    assert sizes(d)[(P, R2)] == (0, 0)  # ... then is kept at zero for fast re-promotion
    assert d.predictors[(P, R2)] == V2


def test_too_few_requests_waits_without_verdict() -> None:
    run = start_progressive()
    d = run.step(after=60, metrics=ok(requests=12, errors=12))
    assert d.events == ()
    assert weights(d) == {(P, R1): 90, (P, R2): 10}
    state = run.state()
    assert state.canary is not None
    assert state.canary.failed_checks == 0
    assert state.canary.step == 0
    assert state.canary.window_started_at == T0 + timedelta(seconds=7)  # window keeps growing
    progressing = cond(d, "RolloutProgressing")
    assert progressing.reason == "WaitingForTraffic"
    assert "waiting for traffic: 12 of 50 requests" in progressing.message
    assert d.requeue_after == 60
    req = metrics_request(Policy.from_spec(run.spec), state, run.now)
    assert req is not None
    assert req.window_seconds == 60  # a Prometheus query spans the whole grown window

    d = run.step(after=60, metrics=ok(requests=80))
    assert reasons(d) == ["AnalysisPassed", "CanaryWeight"]


def test_quality_gate_waits_for_feedback_then_rolls_back_naming_accuracy() -> None:
    """The stable revision is the baseline of maxQualityDrop; the reading is kept in state."""
    analysis = {"minRequests": 10, "failureThreshold": 1, "maxQualityDrop": 0.05}
    run = start_progressive({**PROGRESSIVE, "analysis": analysis})
    req = metrics_request(Policy.from_spec(run.spec), run.state(), run.now)
    assert req is not None
    assert (req.revision, req.quality_baseline) == (R2, R1)
    d = run.step(after=60, metrics=replace(ok(), quality=Quality(5, 5, 400, 390)))
    assert d.events == ()
    assert "waiting for feedback: 5 of 20 scored" in cond(d, "RolloutProgressing").message
    d = run.step(after=60, metrics=replace(ok(), quality=Quality(100, 80, 400, 390)))
    message = (
        "accuracy 0.8 is 0.175 below stable 0.975 > max drop 0.05 at step 10% (1 failed check)"
    )
    assert cond(d, "RolledBack") == Condition("RolledBack", "True", "AnalysisFailed", message)
    state = run.state()
    assert state.canary is not None
    assert state.canary.quality == QualityStatus(
        scored=100, accuracy=0.8, stable_scored=400, stable_accuracy=0.975
    )


def test_failure_threshold_counts_failures_over_the_whole_rollout() -> None:
    rollout = {**PROGRESSIVE, "analysis": {**PROGRESSIVE["analysis"], "failureThreshold": 3}}
    run = start_progressive(rollout)
    bad = ok(requests=100, errors=20)
    for count in (1, 2):
        d = run.step(after=60, metrics=bad)
        assert reasons(d) == ["AnalysisFailed"]
        assert f"({count} failed check" in d.events[0].message
        assert "rollback at 3 failed checks" in d.events[0].message
        assert weights(d) == {(P, R1): 90, (P, R2): 10}  # a failed check does not advance
    d = run.step(after=60, metrics=ok())  # a pass advances but does not forgive
    assert reasons(d) == ["AnalysisPassed", "CanaryWeight"]
    state = run.state()
    assert state.canary is not None
    assert state.canary.failed_checks == 2
    d = run.step(after=60, metrics=bad)
    assert reasons(d) == ["RolledBack"]
    assert cond(d, "RolledBack").message == (
        "error rate 0.2 > max 0.01 at step 25% (3 failed checks)"
    )


def test_default_failure_threshold_is_two() -> None:
    run = start_progressive()
    d = run.step(after=60, metrics=ok(requests=100, errors=50))
    assert reasons(d) == ["AnalysisFailed"]
    d = run.step(after=60, metrics=ok(requests=100, errors=50))
    assert reasons(d) == ["RolledBack"]


def test_rolled_back_revision_is_not_retried_until_spec_changes() -> None:
    rollout = {**PROGRESSIVE, "analysis": {**PROGRESSIVE["analysis"], "failureThreshold": 1}}
    run = start_progressive(rollout)
    run.step(after=60, metrics=ok(errors=100))
    for _ in range(5):
        d = run.step(after=600, metrics=ok())
        assert d.events == ()
        assert weights(d) == {(P, R1): 100}
        assert sizes(d) == {(P, R1): (2, 4), (P, R2): (0, 0)}
        assert cond(d, "RolledBack").status == "True"
        assert d.requeue_after is None
        assert metrics_request(Policy.from_spec(run.spec), run.state(), run.now) is None

    run.spec = isvc_spec(V3, rollout=rollout)
    d = run.step(after=1)
    assert reasons(d) == ["CanaryStarted"]
    assert cond(d, "RolledBack").status == "False"
    assert (P, R2) not in sizes(d)  # the rolled-back revision is pruned
    assert [h.outcome for h in d.state.history] == ["Promoted", "RolledBack"]


def test_spec_reverted_to_stable_abandons_the_canary() -> None:
    run = start_progressive()
    run.spec = isvc_spec(V1, rollout=PROGRESSIVE)
    d = run.step(after=5)
    assert weights(d) == {(P, R1): 100}
    assert sizes(d) == {(P, R1): (2, 4), (P, R2): (1, 1)}  # drains, then goes
    assert reasons(d) == ["RevisionSuperseded"]
    assert d.state.canary is None
    assert d.state.history[-1].outcome == "Superseded"
    d = run.step(after=DRAIN)
    assert sizes(d) == {(P, R1): (2, 4)}


def test_new_revision_mid_canary_supersedes_it() -> None:
    run = start_progressive()
    run.spec = isvc_spec(V3, rollout=PROGRESSIVE)
    d = run.step(after=5)
    assert reasons(d) == ["RevisionSuperseded", "CanaryStarted"]
    assert weights(d) == {(P, R1): 100}
    assert set(sizes(d)) == {(P, R1), (P, R2), (P, R3)}
    d = run.step(after=DRAIN)
    assert weights(d) == {(P, R1): 90, (P, R3): 10}
    assert set(sizes(d)) == {(P, R1), (P, R3)}


def test_gitops_revert_to_previous_revision_reuses_its_deployment() -> None:
    run = start_manual_canary(10)
    run.step(after=1)
    run.step(after=1)
    run.spec = isvc_spec(V2)  # promote R2
    run.spec["rollout"] = {"canaryTrafficPercent": 10}
    run.spec = isvc_spec(V2, rollout={"canaryTrafficPercent": 100})
    run.step(after=1)
    run.step(after=1)
    d = run.step(after=DRAIN)
    assert sizes(d) == {(P, R1): (0, 0), (P, R2): (2, 4)}  # R1's Deployment still exists

    # The Git history is reverted to the R1 predictor (manual canary block still there):
    run.spec = isvc_spec(V1, rollout={"canaryTrafficPercent": 10})
    d = run.step(after=60)
    assert "RevisionReused" in reasons(d)
    assert "CanaryStarted" not in reasons(d)  # known-good: no canary, straight promotion
    assert sizes(d) == {(P, R1): (2, 4), (P, R2): (2, 4)}
    assert weights(d) == {(P, R2): 100}
    d = run.step(after=5)
    assert weights(d) == {(P, R1): 100}
    d = run.step(after=DRAIN)
    assert sizes(d) == {(P, R1): (2, 4), (P, R2): (0, 0)}
    assert [h.outcome for h in d.state.history] == ["Promoted"] * 3


def test_revert_to_older_revision_in_history_skips_the_canary() -> None:
    run = start_manual_canary(100)
    run.step(after=1)
    run.step(after=1)
    run.step(after=DRAIN)
    run.spec = isvc_spec(V3, rollout={"canaryTrafficPercent": 100})
    for _ in range(3):
        run.step(after=DRAIN)
    run.spec = isvc_spec(V1, rollout={"canaryTrafficPercent": 10})  # R1: two revisions ago
    d = run.step(after=1)
    assert (P, R1) in sizes(d)
    assert reasons(d) == ["Promoting"]


@pytest.mark.parametrize(("rollout", "kept"), [(None, 10), ({"historyLimit": 3}, 3)])
def test_history_is_bounded(rollout: dict[str, Any] | None, kept: int) -> None:
    extra = {} if rollout is None else {"rollout": rollout}
    run = Run(isvc_spec(predictor("v0"), **extra))
    run.step()
    for n in range(1, 15):
        run.spec = isvc_spec(predictor(f"v{n}"), **extra)
        run.step(after=1)
        run.step(after=1)
    assert len(run.state().history) == kept
    assert run.state().history[-1].revision == revision_hash(predictor("v14"))


VARIANT_B = predictor("b", min_replicas=1, max_replicas=2)
RB = revision_hash(VARIANT_B)
VARIANTS = [
    {
        "name": "b",
        "weight": 20,
        "match": {"headers": {"x-model-variant": "b"}},
        "predictor": VARIANT_B,
    }
]


def test_ab_variants_weights_and_header_match() -> None:
    run = Run(isvc_spec(V1, variants=VARIANTS))
    d = run.step()
    assert weights(d) == {(P, R1): 80, ("b", RB): 20}
    assert d.plan.header_routes == (
        HeaderRoute((("x-model-variant", "b"),), Backend("b", RB, 100)),
    )
    assert sizes(d) == {(P, R1): (2, 4), ("b", RB): (1, 2)}
    assert d.predictors[("b", RB)] == VARIANT_B
    assert "VariantCreated" in reasons(d)
    assert cond(d, "PredictorReady").status == "False"
    d = run.step(after=5)
    assert cond(d, "PredictorReady").message == f"predictor {R1}: 2/2 ready; b {RB}: 1/1 ready"


def test_canary_shares_the_main_predictors_part_with_variants() -> None:
    run = Run(isvc_spec(V1, variants=VARIANTS, rollout={"canaryTrafficPercent": 10}))
    run.step()
    run.step(after=1)
    run.spec = isvc_spec(V2, variants=VARIANTS, rollout={"canaryTrafficPercent": 10})
    run.step(after=1)
    d = run.step(after=1)
    assert weights(d) == {(P, R1): 72, (P, R2): 8, ("b", RB): 20}
    assert sum(weights(d).values()) == 100


def test_variant_update_is_ready_gated_and_removal_drains() -> None:
    run = Run(isvc_spec(V1, variants=VARIANTS))
    run.step()
    run.step(after=1)
    b2 = predictor("b2", min_replicas=1, max_replicas=2)
    rb2 = revision_hash(b2)
    run.spec = isvc_spec(V1, variants=[{**VARIANTS[0], "predictor": b2}])
    d = run.step(after=1)
    assert reasons(d) == ["VariantUpdating"]
    assert weights(d)[("b", RB)] == 20
    assert cond(d, "RolloutProgressing").reason == "VariantUpdating"
    d = run.step(after=1)
    assert reasons(d) == ["VariantUpdated"]
    assert weights(d) == {(P, R1): 80, ("b", rb2): 20}
    assert d.plan.header_routes[0].backend == Backend("b", rb2, 100)
    assert sizes(d)[("b", RB)] == (1, 2)
    d = run.step(after=DRAIN)
    assert ("b", RB) not in sizes(d)

    run.spec = isvc_spec(V1)
    d = run.step(after=1)
    assert reasons(d) == ["VariantRemoved"]
    assert weights(d) == {(P, R1): 100}
    assert d.plan.header_routes == ()
    assert sizes(d)[("b", rb2)] == (1, 2)
    d = run.step(after=DRAIN)
    assert sizes(d) == {(P, R1): (2, 4)}


def test_mirror_copies_traffic_to_a_variant() -> None:
    shadow = [{"name": "shadow", "weight": 0, "predictor": VARIANT_B}]
    run = Run(isvc_spec(V1, variants=shadow, mirror={"variant": "shadow", "percent": 10}))
    d = run.step()
    assert weights(d) == {(P, R1): 100}  # a mirror-only variant gets no live traffic
    assert d.plan.mirror == Mirror(Backend("shadow", RB, 100), 10)
    assert sizes(d)[("shadow", RB)] == (1, 2)


def test_mirror_to_unknown_variant_is_reported() -> None:
    run = Run(isvc_spec(V1, mirror={"variant": "nope", "percent": 10}))
    d = run.step()
    assert d.plan.mirror is None
    assert ("Warning", "MirrorTargetUnknown") in [(e.type, e.reason) for e in d.events]


def pods(requests: float, errors: float, fast: float) -> dict[str, PodCounters]:
    """A pod scrape: `fast` of the requests took <= 50ms, the rest <= 1s."""
    buckets = {"0.05": fast, "1.0": requests, "+Inf": requests}
    return {"iris-predictor-x-1": PodCounters(requests=requests, errors=errors, buckets=buckets)}


def test_pod_scrapes_are_judged_as_deltas_from_the_window_start() -> None:
    rollout = {**PROGRESSIVE, "analysis": {**PROGRESSIVE["analysis"], "failureThreshold": 1}}
    run = Run(isvc_spec(V1, rollout=rollout))
    run.step()
    run.step(after=1)
    run.spec = isvc_spec(V2, rollout=rollout)
    run.step(after=1, metrics=pods(0, 0, 0))
    d = run.step(after=5, metrics=pods(1000, 900, 1000))  # traffic moves: baseline taken
    assert weights(d)[(P, R2)] == 10
    state = run.state()
    assert state.canary is not None
    assert state.canary.baseline == pods(1000, 900, 1000)  # survives the JSON round trip

    # 100 new requests, none failed, 99 under 50ms: passes despite the old 900 errors.
    d = run.step(after=60, metrics=pods(1100, 900, 1099))
    assert reasons(d) == ["AnalysisPassed", "CanaryWeight"]
    assert weights(d)[(P, R2)] == 25
    # Next window: 100 requests, 3 errors, all slow -> error rate and p99 both fail.
    d = run.step(after=60, metrics=pods(1200, 903, 1099))
    assert reasons(d) == ["RolledBack"]
    assert cond(d, "RolledBack").message == (
        "error rate 0.03 > max 0.01; p99 latency 990ms > max 250ms at step 25% (1 failed check)"
    )


def test_pod_scrape_without_baseline_starts_the_window() -> None:
    run = start_progressive()  # traffic moved without a scrape at hand
    d = run.step(after=60, metrics=pods(500, 0, 500))
    assert d.events == ()
    assert "first scrape" in cond(d, "RolloutProgressing").message
    d = run.step(after=60, metrics=pods(600, 0, 600))
    assert reasons(d) == ["AnalysisPassed", "CanaryWeight"]


def test_due_check_without_metrics_retries_soon() -> None:
    run = start_progressive()
    d = run.step(after=60)
    assert d.events == ()
    assert d.requeue_after == 5.0
    assert "waiting for metrics" in cond(d, "RolloutProgressing").message


def test_manual_canary_with_analysis_rolls_back_but_never_promotes() -> None:
    rollout = {
        "canaryTrafficPercent": 10,
        "interval": "30s",
        "analysis": {"maxErrorRate": 0.05, "failureThreshold": 1},
    }
    run = Run(isvc_spec(V1, rollout=rollout))
    run.step()
    run.step(after=1)
    run.spec = isvc_spec(V2, rollout=rollout)
    run.step(after=1)
    run.step(after=1)
    d = run.step(after=30, metrics=ok())
    assert d.events == ()
    assert weights(d) == {(P, R1): 90, (P, R2): 10}
    assert "check passed at 10% canary traffic" in cond(d, "RolloutProgressing").message
    d = run.step(after=30, metrics=ok(requests=10, errors=1))
    assert cond(d, "RolledBack").message == (
        "error rate 0.1 > max 0.05 at 10% canary traffic (1 failed check)"
    )


def test_lowering_the_canary_share_moves_traffic_at_once() -> None:
    run = start_manual_canary(60)
    run.step(after=1)
    run.step(after=1)
    run.spec = isvc_spec(V2, rollout={"canaryTrafficPercent": 20})
    d = run.step(after=1, ready={})  # even with nothing reported Ready
    assert weights(d) == {(P, R1): 80, (P, R2): 20}


def test_restart_mid_rollout_decides_the_same_from_status_alone() -> None:
    run = start_progressive()
    run.step(after=60, metrics=ok(requests=100, errors=10))  # one failed check recorded
    live = run.last
    assert live is not None
    observed = Observed(
        workloads={
            (w.component, w.revision): WorkloadObservation(True, w.min_replicas)
            for w in live.plan.workloads
        },
        canary_metrics=ok(),
    )
    later = run.now + timedelta(seconds=60)
    continued = decide(Policy.from_spec(run.spec), live.state, observed, later)
    restarted = decide(
        Policy.from_spec(run.spec),
        RolloutState.from_status(json.loads(json.dumps(run.status))),
        observed,
        later,
    )
    assert restarted == continued
    assert restarted.state.to_status() == continued.state.to_status()
    assert reasons(restarted) == ["AnalysisPassed", "CanaryWeight"]


def test_decide_leaves_the_given_state_untouched() -> None:
    run = start_progressive()
    before = run.state()
    snapshot = before.to_status()
    decide(
        Policy.from_spec(run.spec),
        before,
        Observed(canary_metrics=ok(errors=200)),
        run.now + timedelta(hours=1),
    )
    assert before.to_status() == snapshot


def test_status_round_trip_uses_camel_case() -> None:
    run = start_progressive()
    raw = run.status["rollout"]
    assert set(raw) >= {"stable", "canary", "history", "retiring", "variants"}
    assert raw["canary"]["windowStartedAt"] == "2025-03-01T12:00:07Z"
    assert raw["canary"]["percent"] == 10
    assert raw["stable"]["percent"] == 90
    assert RolloutState.from_status(run.status).to_status() == raw
    assert RolloutState.from_status({}) == RolloutState()
