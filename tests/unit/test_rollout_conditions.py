"""The conditions stage on its own: state, observations and progress in, conditions out.

The rolled-back conditions and the messages of each rollout phase are covered through
`decide` in test_rollout_decision.py. Checked here: the stages' progress outranks the
canary's default message, a finished rollout still reports its drains, and
PredictorReady names the stable and every variant but lists only what is missing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kubeserve.rollout.conditions import Condition, rollout_conditions
from kubeserve.rollout.observation import Observed, WorkloadObservation
from kubeserve.rollout.state import (
    CanaryStatus,
    RetiringWorkload,
    RevisionStatus,
    RolloutState,
    VariantState,
)
from kubeserve.rollout.transition import Progress

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NOT_ROLLED_BACK = Condition("RolledBack", "False", "NotRolledBack", "")


def state(**extra: object) -> RolloutState:
    """Stable `r1` (2 replicas), variant b serving `b1` (1 replica), plus `extra`."""
    return RolloutState.model_validate(
        {
            "stable": RevisionStatus(
                revision="r1", percent=100, since=T0, predictor={"minReplicas": 2}
            ),
            "variants": {"b": VariantState(revision="b1", since=T0, predictor={})},
            **extra,
        }
    )


def ready(predictor: int, b: int) -> Observed:
    """Ready counts of the stable and of variant b."""
    return Observed(
        workloads={
            ("predictor", "r1"): WorkloadObservation(True, predictor),
            ("b", "b1"): WorkloadObservation(True, b),
        }
    )


def test_progress_outranks_the_canarys_default_message() -> None:
    """A stage's progress is the message; without one, a canary is 'in progress'."""
    canary = CanaryStatus(revision="r2", since=T0)
    waiting = Progress("CanaryDeploying", "canary r2 needs 1 ready replicas")
    _, *rollout = rollout_conditions(state(canary=canary), ready(2, 1), waiting)
    assert rollout == [
        Condition("RolloutProgressing", "True", "CanaryDeploying", waiting.message),
        Condition("RolloutSucceeded", "False", "InProgress", waiting.message),
        NOT_ROLLED_BACK,
    ]
    _, progressing, _, _ = rollout_conditions(state(canary=canary), ready(2, 1), None)
    assert progressing == Condition(
        "RolloutProgressing", "True", "CanaryProgressing", "canary r2 in progress"
    )


def test_a_finished_rollout_reports_its_drains() -> None:
    """No canary, no progress, one old revision draining: succeeded, still progressing."""
    drain = RetiringWorkload(
        component="predictor", revision="r0", min_replicas=2, max_replicas=2, until=T0
    )
    _, *rollout = rollout_conditions(state(retiring=[drain]), ready(2, 1), None)
    assert rollout == [
        Condition(
            "RolloutProgressing", "True", "Draining", "old revision(s) r0 drain before scaling down"
        ),
        Condition("RolloutSucceeded", "True", "Stable", "revision r1 serves the predictor"),
        NOT_ROLLED_BACK,
    ]
    _, progressing, _, _ = rollout_conditions(state(), ready(2, 1), None)
    assert progressing == Condition(
        "RolloutProgressing", "False", "Complete", "revision r1 is stable"
    )


def test_predictor_ready_names_every_serving_revision_and_lists_what_is_missing() -> None:
    """True: all of them with counts; False: only those below their minimum."""
    ok, *_ = rollout_conditions(state(), ready(2, 1), None)
    assert ok == Condition(
        "PredictorReady", "True", "Ready", "predictor r1: 2/2 ready; b b1: 1/1 ready"
    )
    short, *_ = rollout_conditions(state(), ready(1, 1), None)
    assert short == Condition("PredictorReady", "False", "NotReady", "predictor r1: 1/2 ready")
