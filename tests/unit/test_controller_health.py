"""The kstatus health conditions on their own: the pass's other conditions in, Reconciling
or Stalled (present only while True, never both) out."""

from __future__ import annotations

from datetime import UTC, datetime

from kubeserve.controller.health import health_conditions
from kubeserve.controller.status import merge_conditions
from kubeserve.rollout.decision import Condition

READY = Condition("PredictorReady", "True", "Ready", "predictor r1: 1/1 ready")
ROUTES = Condition("RoutesReady", "True", "RoutesApplied", "traffic split is applied")
COMPLETE = Condition("RolloutProgressing", "False", "Complete", "revision r1 is stable")
NOT_ROLLED_BACK = Condition("RolledBack", "False", "NotRolledBack", "")
HEALTHY = (READY, ROUTES, COMPLETE, NOT_ROLLED_BACK)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)


def health(
    *conditions: Condition, stalled: dict[tuple[str, str], str] | None = None, manual: bool = False
) -> tuple[Condition, ...]:
    """Health of HEALTHY with `conditions` replacing those of the same type."""
    wanted = {c.type: c for c in (*HEALTHY, *conditions)}
    return health_conditions(
        conditions=list(wanted.values()), stalled_workloads=stalled or {}, manual_canary=manual
    )


def test_a_stable_ready_service_shows_neither() -> None:
    """Both are abnormal-true: absent (not False) when the service is healthy."""
    assert health() == ()


def test_a_rollout_or_a_drain_in_progress_is_reconciling() -> None:
    """RolloutProgressing=True (canary steps, drains) becomes Reconciling with its words."""
    canary = Condition("RolloutProgressing", "True", "CanaryDeploying", "canary r2 needs 1")
    assert health(canary) == (
        Condition("Reconciling", "True", "CanaryDeploying", "canary r2 needs 1"),
    )
    drain = Condition("RolloutProgressing", "True", "Draining", "old revision(s) r0 drain")
    assert health(drain) == (
        Condition("Reconciling", "True", "Draining", "old revision(s) r0 drain"),
    )


def test_replicas_not_ready_yet_are_reconciling() -> None:
    """A predictor short of ready replicas (first rollout, scale-up) is still being worked on."""
    waiting = Condition("PredictorReady", "False", "NotReady", "predictor r1: 0/2 ready")
    assert health(waiting) == (
        Condition("Reconciling", "True", "PredictorNotReady", "predictor r1: 0/2 ready"),
    )


def test_a_manual_canary_holding_its_share_is_steady() -> None:
    """A manual canary at its share waits for a person: not Reconciling; the same reason in
    a progressive rollout (waiting for the next check) is."""
    held = Condition("RolloutProgressing", "True", "CanaryProgressing", "canary r2 at 10%")
    assert health(held, manual=True) == ()
    assert health(held) == (
        Condition("Reconciling", "True", "CanaryProgressing", "canary r2 at 10%"),
    )
    scaling = Condition("RolloutProgressing", "True", "CanaryScaling", "canary r2 needs 2")
    assert health(scaling, manual=True)[0].type == "Reconciling"
    waiting = Condition("PredictorReady", "False", "NotReady", "predictor r1: 0/2 ready")
    assert health(held, waiting, manual=True)[0].reason == "PredictorNotReady"


def test_an_unsupported_route_stalls_and_outranks_progress() -> None:
    """The route kind cannot express the plan: Stalled with RoutesReady's words, and no
    Reconciling beside it even while a canary deploys."""
    refused = Condition("RoutesReady", "False", "UnsupportedByIngress", "one canary per host")
    canary = Condition("RolloutProgressing", "True", "CanaryDeploying", "canary r2 needs 1")
    assert health(refused, canary) == (
        Condition("Stalled", "True", "UnsupportedByIngress", "one canary per host"),
    )


def test_a_rollback_stalls_until_the_spec_changes() -> None:
    """RolledBack=True: the stable serves, but the spec's revision will not roll out."""
    back = Condition("RolledBack", "True", "AnalysisFailed", "error rate 0.12 > max 0.01")
    progressing = Condition(
        "RolloutProgressing", "False", "RolledBack", "revision r2 was rolled back"
    )
    assert health(back, progressing) == (
        Condition(
            "Stalled",
            "True",
            "RolledBack",
            "revision r2 was rolled back: error rate 0.12 > max 0.01",
        ),
    )


def test_a_deployment_past_its_progress_deadline_stalls() -> None:
    """Pods that keep failing: the Deployment controller's verdict, per workload, sorted."""
    canary = Condition("RolloutProgressing", "True", "CanaryDeploying", "canary r2 needs 1")
    stalled = {("predictor", "r2"): "timed out", ("b", "b1"): "quota"}
    assert health(canary, stalled=stalled) == (
        Condition(
            "Stalled", "True", "ProgressDeadlineExceeded", "b b1: quota; predictor r2: timed out"
        ),
    )


def test_a_condition_no_longer_wanted_leaves_the_status() -> None:
    """The status writer keeps only this pass's conditions: Reconciling disappears (not
    False) when the rollout ends, and Ready keeps its transition time."""
    before = merge_conditions(
        None,
        [Condition("Ready", "True", "Ready", ""), Condition("Reconciling", "True", "X", "")],
        3,
        T0,
    )
    after = merge_conditions(before, [Condition("Ready", "True", "Ready", "")], 4, T1)
    assert [(c["type"], c["lastTransitionTime"], c["observedGeneration"]) for c in after] == [
        ("Ready", "2026-03-01T12:00:00Z", 4)
    ]
