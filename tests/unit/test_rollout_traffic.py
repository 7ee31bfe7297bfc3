"""The traffic stage on its own: a hand-built rollout state in, the plan out.

The shares of a manual or progressive canary, the header match and the mirror are
also covered through `decide` in test_rollout_decision.py. Checked here: the canary's
rounded part of a main share that variants reduced, which workloads are kept at which
size (rolled-back canary, `previous` only with a rollout block, drains, pending
variants), and header routes to the serving revision while another is pending.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubeserve.plan import Backend, HeaderRoute
from kubeserve.rollout.policy import Policy
from kubeserve.rollout.state import (
    CanaryStatus,
    PendingRevision,
    RetiringWorkload,
    RevisionStatus,
    RolloutState,
    VariantState,
)
from kubeserve.rollout.traffic import traffic_plan

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
P = "predictor"


def predictor(name: str, low: int = 2, high: int = 4) -> dict[str, Any]:
    """A predictor spec with low..high replicas."""
    return {"model": {"storageUri": f"s3://m/{name}"}, "minReplicas": low, "maxReplicas": high}


def spec(rollout: dict[str, Any] | None = None) -> dict[str, Any]:
    """Main predictor `new`; variant a (30%, no header), variant b (0%, header match)."""
    variants = [
        {"name": "a", "weight": 30, "predictor": predictor("a")},
        {"name": "b", "weight": 0, "match": {"headers": {"x-v": "b"}}, "predictor": predictor("b")},
    ]
    out: dict[str, Any] = {"predictor": predictor("new"), "variants": variants}
    if rollout is not None:
        out["rollout"] = rollout
    return out


def state(canary: CanaryStatus | None = None) -> RolloutState:
    """Stable `r1`, previous `r0`, variant a serving `a1`, variant b serving `b1` with
    `b2` pending, and `a0` draining."""
    return RolloutState(
        stable=RevisionStatus(revision="r1", percent=75, since=T0, predictor=predictor("old")),
        canary=canary,
        previous=RevisionStatus(revision="r0", since=T0, predictor=predictor("older")),
        variants={
            "a": VariantState(revision="a1", since=T0, predictor=predictor("a")),
            "b": VariantState(
                revision="b1",
                since=T0,
                predictor=predictor("b", 1, 1),
                pending=PendingRevision(revision="b2", predictor=predictor("b", 1, 2), replicas=3),
            ),
        },
        retiring=[
            RetiringWorkload(
                component="a",
                revision="a0",
                min_replicas=5,
                max_replicas=6,
                until=T0,
                predictor=predictor("a0"),
            )
        ],
    )


def test_the_canary_takes_its_rounded_part_of_what_variants_leave() -> None:
    """Main share 70; canary 25% of it = 17.5 -> 18, the stable gets 52; 0% is left out."""
    canary = CanaryStatus(revision="r2", percent=25, since=T0, min_replicas=1, max_replicas=1)
    plan = traffic_plan(Policy.from_spec(spec({"steps": [25]})), state(canary)).plan
    assert plan.backends == (
        Backend(P, "r1", 52),
        Backend(P, "r2", 18),
        Backend("a", "a1", 30),
    )
    assert plan.header_routes == (HeaderRoute((("x-v", "b"),), Backend("b", "b1", 100)),)


def test_workloads_keep_the_sizes_their_roles_call_for() -> None:
    """Rolled-back canary and previous at 0/0 (previous only with a rollout block),
    drains at their size, a pending variant at its required ready count."""
    rolled_back = CanaryStatus(revision="r2", phase="RolledBack", since=T0, predictor={"x": 1})
    sizes = {
        (w.component, w.revision): (w.min_replicas, w.max_replicas)
        for w in traffic_plan(Policy.from_spec(spec({})), state(rolled_back)).plan.workloads
    }
    assert sizes == {
        (P, "r0"): (0, 0),
        (P, "r1"): (2, 4),
        (P, "r2"): (0, 0),
        ("a", "a0"): (5, 6),
        ("a", "a1"): (2, 4),
        ("b", "b1"): (1, 1),
        ("b", "b2"): (3, 3),
    }
    without_rollout = traffic_plan(Policy.from_spec(spec()), state())
    assert (P, "r0") not in without_rollout.predictors
    assert without_rollout.predictors[("a", "a0")] == predictor("a0")
    assert list(without_rollout.predictors) == sorted(without_rollout.predictors)
