"""The variant stage on its own: hand-built states in, one transition out.

Creation, a Ready-gated replacement and removal are also covered through `decide` in
test_rollout_decision.py (test_variant_update_is_ready_gated_and_removal_drains). What
is checked here is what that scenario does not show: the newcomer's size follows the
serving revision's *current* ready count, only the first waiting variant reports
progress, and the stage changes nothing but variants and drains.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubeserve.rollout.observation import Observed, WorkloadObservation
from kubeserve.rollout.policy import Policy
from kubeserve.rollout.revision import revision_hash
from kubeserve.rollout.settings import RolloutSettings
from kubeserve.rollout.state import (
    PendingRevision,
    RevisionStatus,
    RolloutState,
    VariantState,
)
from kubeserve.rollout.transition import Event, Progress
from kubeserve.rollout.variants import variant_transitions

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SETTINGS = RolloutSettings(drain_seconds=10.0)


def predictor(version: str, max_replicas: int) -> dict[str, Any]:
    """A predictor spec with 1..max_replicas replicas."""
    return {"model": {"storageUri": f"s3://m/{version}"}, "maxReplicas": max_replicas}


MAIN = predictor("main", 2)
A1, A2, B1, B2 = predictor("a1", 4), predictor("a2", 4), predictor("b1", 2), predictor("b2", 2)
RA1, RA2, RB1, RB2 = (revision_hash(p) for p in (A1, A2, B1, B2))


def policy(a: dict[str, Any], b: dict[str, Any]) -> Policy:
    """A spec with variants a and b (10% each)."""
    variants = [{"name": n, "weight": 10, "predictor": p} for n, p in (("a", a), ("b", b))]
    return Policy.from_spec({"predictor": MAIN, "variants": variants})


def serving(pending_a: PendingRevision | None = None) -> RolloutState:
    """Stable main predictor; a serves A1, b serves B1."""
    return RolloutState(
        stable=RevisionStatus(revision="main", percent=100, since=T0, predictor=MAIN),
        variants={
            "a": VariantState(revision=RA1, since=T0, predictor=A1, pending=pending_a),
            "b": VariantState(revision=RB1, since=T0, predictor=B1),
        },
    )


def observed(ready: dict[tuple[str, str], int]) -> Observed:
    """Workloads Ready with these counts."""
    return Observed(workloads={key: WorkloadObservation(True, n) for key, n in ready.items()})


def test_a_new_revision_waits_for_the_serving_revisions_current_size() -> None:
    """a's HPA runs 3 replicas: its newcomer needs 3; only a reports progress."""
    state = serving()
    before = state.to_status()
    seen = observed({("a", RA1): 3, ("b", RB1): 1})
    t = variant_transitions(policy(A2, B2), state, seen, T0, SETTINGS)
    assert state.to_status() == before
    assert t.events == (
        Event("Normal", "VariantUpdating", f"variant a: revision {RA2} deploys to replace {RA1}"),
        Event("Normal", "VariantUpdating", f"variant b: revision {RB2} deploys to replace {RB1}"),
    )
    pending = {name: v.pending for name, v in t.state.variants.items()}
    assert pending == {
        "a": PendingRevision(revision=RA2, predictor=A2, replicas=3),
        "b": PendingRevision(revision=RB2, predictor=B2, replicas=1),
    }
    assert t.progress == Progress(
        "VariantUpdating", f"variant a revision {RA2} needs 3 ready replicas (0 ready)"
    )
    assert t.state.stable == state.stable
    assert t.state.retiring == []


def test_a_ready_newcomer_takes_over_and_the_old_revision_drains() -> None:
    """Ready at the required count: it serves now, the old one keeps its size 10 s."""
    state = serving(PendingRevision(revision=RA2, predictor=A2, replicas=3))
    now = T0 + timedelta(seconds=30)
    t = variant_transitions(policy(A2, B1), state, observed({("a", RA2): 3}), now, SETTINGS)
    assert t.events == (
        Event("Normal", "VariantUpdated", f"variant a serves revision {RA2} (was {RA1})"),
    )
    a = t.state.variants["a"]
    assert (a.revision, a.predictor, a.since, a.pending) == (RA2, A2, now, None)
    (old,) = t.state.retiring
    assert (old.component, old.revision, old.min_replicas, old.max_replicas) == ("a", RA1, 1, 4)
    assert old.until == now + timedelta(seconds=10)
    assert t.progress is None
