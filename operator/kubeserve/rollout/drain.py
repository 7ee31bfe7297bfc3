"""Draining: a workload that lost its traffic keeps its size for a while before it shrinks.

Limits: the drain is a fixed period (`RolloutSettings.drain_seconds`) after the traffic
moved, not a count of open connections: the operator sees neither connections nor when
the Gateway or ingress controller applied the new weights, so a period longer than the
data plane's reaction time is the rule (it covers requests still on their way too).

The list of draining workloads is `RolloutState.retiring`; these functions return a
new list and never change the one they are given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from kubeserve.rollout.policy import Replicas
from kubeserve.rollout.state import RetiringWorkload


def retire(
    retiring: Sequence[RetiringWorkload],
    component: str,
    revision: str,
    size: Replicas,
    predictor: Mapping[str, Any],
    until: datetime,
) -> list[RetiringWorkload]:
    """Keep a workload at `size` until `until` (one entry per workload; a workload
    already at zero has nothing to drain)."""
    if size.max <= 0:
        return list(retiring)
    return [
        *unretire(retiring, component, revision),
        RetiringWorkload(
            component=component,
            revision=revision,
            min_replicas=size.min,
            max_replicas=size.max,
            until=until,
            predictor=dict(predictor),
        ),
    ]


def unretire(
    retiring: Sequence[RetiringWorkload], component: str, revision: str
) -> list[RetiringWorkload]:
    """Stop draining a workload (it takes traffic again)."""
    return [r for r in retiring if (r.component, r.revision) != (component, revision)]


def still_draining(retiring: Sequence[RetiringWorkload], now: datetime) -> list[RetiringWorkload]:
    """The workloads whose drain has not ended at `now`."""
    return [r for r in retiring if r.until > now]


def drain_ends(retiring: Sequence[RetiringWorkload], now: datetime) -> tuple[float, ...]:
    """Seconds from `now` until each drain ends (never negative)."""
    return tuple(max(0.0, (r.until - now).total_seconds()) for r in retiring)
