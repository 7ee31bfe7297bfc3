"""Drains and stage transitions: the small pure helpers every stage builds on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubeserve.rollout.drain import drain_ends, retire, still_draining, unretire
from kubeserve.rollout.policy import Replicas
from kubeserve.rollout.state import RolloutState
from kubeserve.rollout.transition import Progress, Transition

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_a_workload_drains_once_at_its_latest_size() -> None:
    """Retiring it again replaces its entry; a workload at zero has nothing to drain."""
    first = retire([], "predictor", "r1", Replicas(2, 4), {"a": 1}, T0)
    again = retire(first, "predictor", "r1", Replicas(3, 5), {"a": 1}, T0 + timedelta(seconds=5))
    assert [(r.revision, r.min_replicas, r.max_replicas) for r in again] == [("r1", 3, 5)]
    assert [(r.revision, r.min_replicas) for r in first] == [("r1", 2)]  # input unchanged
    assert retire(first, "b", "x", Replicas(0, 0), {}, T0) == first
    assert unretire(again, "predictor", "r1") == []


def test_a_drain_ends_at_its_time_and_is_never_overdue() -> None:
    """`until == now` has ended; requeue delays are never negative."""
    retiring = [
        *retire([], "predictor", "r1", Replicas(1, 1), {}, T0),
        *retire([], "predictor", "r2", Replicas(1, 1), {}, T0 + timedelta(seconds=4)),
    ]
    assert [r.revision for r in still_draining(retiring, T0)] == ["r2"]
    assert drain_ends(retiring, T0 + timedelta(seconds=1)) == (0.0, 3.0)


def test_a_transition_notes_only_on_progress_and_never_requeues_into_the_past() -> None:
    """A note without progress is dropped; a negative delay means at once."""
    t = Transition(RolloutState()).note("lost").requeue(-3.0)
    assert (t.progress, t.requeues) == (None, (0.0,))
    t = t.progressing("Promoting", "waiting").note("2 of 3 ready")
    assert t.progress == Progress("Promoting", "waiting; 2 of 3 ready")
