"""The drift decision on its own: PSI readings over time in; DriftDetected, the stored
state, Events and the webhook's findings out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubeserve.api.v1alpha1 import DriftMonitoring
from kubeserve.monitoring.drift import (
    RETRY_SECONDS,
    DriftDecision,
    DriftFinding,
    DriftPolicy,
    DriftState,
    DriftUnavailable,
    PsiReading,
    decide_drift,
)
from kubeserve.rollout.decision import Condition

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOOK = "http://hooks.example/retrain"
POLICY = DriftPolicy.from_spec(
    DriftMonitoring.model_validate(
        {"threshold": 0.25, "features": {"age": 0.1}, "for": "10m", "webhook": HOOK}
    )
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def run(
    readings: list[tuple[float, PsiReading]], policy: DriftPolicy = POLICY
) -> list[DriftDecision]:
    """Decide at each (minute, reading), storing the state in between as the operator does
    (here the webhook always accepts: notified is stored True after a notice)."""
    stored: DriftState | None = None
    out = []
    for minute, reading in readings:
        decision = decide_drift(policy, stored, "r1", reading, at(minute))
        out.append(decision)
        stored = DriftState.from_status(decision.state.to_status())
        if decision.notify:
            stored = stored.model_copy(update={"notified": True}) if stored else None
    return out


def test_spec_reads_global_and_per_feature_thresholds() -> None:
    """`features` overrides `threshold`; `for` is a duration."""
    assert (POLICY.limit("age"), POLICY.limit("income"), POLICY.for_seconds) == (0.1, 0.25, 600)


def test_psi_above_for_the_duration_detects_once_and_tells_the_webhook() -> None:
    """Above at 0 and 5 min: pending (requeued for the end of the window); at 10 min:
    detected with one Warning and one notice; at 11 min: nothing new to say."""
    above = {"income": 0.4, "age": 0.05}
    first, second, third, fourth = run([(0, above), (5, above), (10, above), (11, above)])
    assert first.condition == Condition(
        "DriftDetected",
        "False",
        "DriftPending",
        "PSI above threshold, not yet for 600s: income (since 2026-03-01T12:00:00Z)",
    )
    assert (first.requeue_after, second.requeue_after) == (600, 300)
    assert first.events == second.events == ()
    assert second.condition == first.condition  # no write while waiting
    assert third.condition == Condition(
        "DriftDetected",
        "True",
        "PSIAboveThreshold",
        "PSI above threshold: income (since 2026-03-01T12:00:00Z)",
    )
    [warning] = third.events
    assert (warning.type, warning.reason) == ("Warning", "DriftDetected")
    assert warning.message == (
        "revision r1: input PSI above threshold for 600s or more: income 0.4 > 0.25"
    )
    assert third.notify == (DriftFinding("income", 0.4, 0.25, T0),)
    assert third.requeue_after == RETRY_SECONDS
    assert (fourth.events, fourth.notify, fourth.condition) == ((), (), third.condition)


def test_a_failed_delivery_is_retried_until_stored_as_told() -> None:
    """The state says notified=False until the operator stores True after a 2xx."""
    above = {"income": 0.4}
    detected = decide_drift(POLICY, None, "r1", above, at(0))
    detected = decide_drift(POLICY, detected.state, "r1", above, at(10))
    assert detected.notify
    assert not detected.state.notified
    again = decide_drift(POLICY, detected.state, "r1", above, at(11))
    assert again.notify == detected.notify
    assert again.events == ()  # the Warning was said once


def test_a_dip_restarts_the_clock_and_recovery_is_an_event() -> None:
    """Under the threshold resets a feature's clock; a resolved drift says so."""
    above, below = {"age": 0.2}, {"age": 0.01}
    decisions = run([(0, above), (5, below), (6, above), (15, above), (16, above), (17, below)])
    assert [d.condition.reason for d in decisions] == [
        "DriftPending",
        "NoDrift",
        "DriftPending",
        "DriftPending",
        "PSIAboveThreshold",
        "NoDrift",
    ]
    [resolved] = decisions[-1].events
    assert (resolved.type, resolved.reason) == ("Normal", "DriftResolved")
    assert decisions[-1].state == DriftState(revision="r1")


def test_a_new_stable_revision_starts_from_nothing() -> None:
    """Another revision is another model: the old clocks and detection do not carry over."""
    old = run([(0, {"income": 0.5}), (10, {"income": 0.5})])[-1]
    assert old.state.detected == ["income"]
    fresh = decide_drift(POLICY, old.state, "r2", {"income": 0.5}, at(11))
    assert fresh.condition.reason == "DriftPending"
    assert fresh.state.above == {"income": at(11)}


def test_an_unavailable_reading_keeps_the_clocks_and_a_detection() -> None:
    """No reading: Unknown while nothing was detected, True (unchanged) once it was."""
    missing = DriftUnavailable("prometheus: connection refused")
    pending = decide_drift(POLICY, None, "r1", {"income": 0.5}, at(0))
    blind = decide_drift(POLICY, pending.state, "r1", missing, at(5))
    assert blind.condition == Condition(
        "DriftDetected", "Unknown", "MetricsUnavailable", "prometheus: connection refused"
    )
    assert blind.state == pending.state
    detected = decide_drift(POLICY, pending.state, "r1", {"income": 0.5}, at(10))
    still = decide_drift(POLICY, detected.state, "r1", missing, at(11))
    assert still.condition == detected.condition


def test_no_psi_yet_and_no_webhook() -> None:
    """No features reported: NoData. Without a webhook a detection is stored as told."""
    assert decide_drift(POLICY, None, "r1", {}, T0).condition.reason == "NoData"
    quiet = DriftPolicy(threshold=0.25, features={}, for_seconds=0)
    detected = decide_drift(quiet, None, "r1", {"x": 1.0}, T0)
    assert detected.condition.status == "True"
    assert (detected.notify, detected.state.notified) == ((), True)
    assert [e.reason for e in detected.events] == ["DriftDetected"]
