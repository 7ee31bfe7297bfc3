"""The rollout decision: a pure function from what is wanted and seen to what to do next.

`decide(policy, state, observed, now)` returns the next rollout state (to store in
status), the :class:`~kubeserve.plan.TrafficPlan` for the builders, the conditions, the
events to emit and when to be called again. It never talks to the API server, so every
rule is a plain unit test.

Limits: it composes four stages and adds no rule of its own; the rules live in the
stage that decides them, each a pure function with named inputs and outputs:

1. drains that ended are dropped (:mod:`.drain`);
2. :func:`~.canary.canary_transition`: the main predictor's stable/canary/previous
   revisions, traffic percent, analysis and rollback;
3. :func:`~.variants.variant_transitions`: each A/B variant's serving revision,
   on the state the canary stage returned;
4. :func:`~.experiment.experiment_transition`: the A/B experiment's look and decision,
   on the variants' state; a promoted winner's weights replace the spec's in the routes;
5. :func:`~.traffic.traffic_plan` and :func:`~.conditions.rollout_conditions` read the
   final state (plus ExperimentConcluded when an experiment runs). The canary stage's
   progress outranks the variants' in the conditions.

The names callers use (`Observed`, `Condition`, `RolloutSettings`, ...) are re-exported
here, so the controller imports the decision from one module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubeserve.plan import TrafficPlan
from kubeserve.rollout.canary import canary_transition
from kubeserve.rollout.conditions import Condition, rollout_conditions
from kubeserve.rollout.drain import drain_ends, still_draining
from kubeserve.rollout.experiment import (
    experiment_condition,
    experiment_transition,
    promoted_weights,
)
from kubeserve.rollout.observation import (
    ExperimentRequest,
    MetricsRequest,
    Observed,
    Reading,
    WorkloadKey,
    WorkloadObservation,
    experiment_request,
    metrics_request,
)
from kubeserve.rollout.policy import Policy
from kubeserve.rollout.settings import RolloutSettings
from kubeserve.rollout.state import RolloutState
from kubeserve.rollout.traffic import traffic_plan
from kubeserve.rollout.transition import Event
from kubeserve.rollout.variants import variant_transitions

__all__ = [
    "Condition",
    "Decision",
    "Event",
    "ExperimentRequest",
    "MetricsRequest",
    "Observed",
    "Policy",
    "Reading",
    "RolloutSettings",
    "WorkloadKey",
    "WorkloadObservation",
    "decide",
    "experiment_request",
    "metrics_request",
]


@dataclass(frozen=True)
class Decision:
    """The outcome of one decision."""

    state: RolloutState
    plan: TrafficPlan
    predictors: Mapping[WorkloadKey, Mapping[str, Any]]
    """The predictor spec of every workload in the plan (what the builders render)."""
    conditions: tuple[Condition, ...]
    events: tuple[Event, ...]
    requeue_after: float | None
    """Seconds until the decision should run again (next check or drain end), if timed."""


def decide(
    policy: Policy,
    state: RolloutState | None,
    observed: Observed,
    now: datetime,
    settings: RolloutSettings | None = None,
) -> Decision:
    """Return the next state, traffic plan, conditions, events and requeue delay.

    `policy` is read from the spec once per pass (:meth:`Policy.from_spec`), by the caller,
    which hands the same value to :func:`metrics_request`.
    """
    settings = settings or RolloutSettings()
    # A deep copy first: the stages share unchanged records between states, and the
    # caller's state must stay independent of the one returned.
    start = RolloutState() if state is None else state.model_copy(deep=True)
    start = start.model_copy(update={"retiring": still_draining(start.retiring, now)})
    main = canary_transition(policy, start, observed, now, settings)
    variants = variant_transitions(policy, main.state, observed, now, settings)
    experiment = experiment_transition(policy, variants.state, observed, now)
    final = experiment.state
    weights = promoted_weights(policy, final)
    traffic = traffic_plan(policy if weights is None else policy.with_weights(weights), final)
    requeues = (
        *main.requeues,
        *variants.requeues,
        *experiment.requeues,
        *drain_ends(final.retiring, now),
    )
    concluded = experiment_condition(final)
    return Decision(
        state=final,
        plan=traffic.plan,
        predictors=traffic.predictors,
        conditions=(
            *rollout_conditions(final, observed, main.progress or variants.progress),
            *(() if concluded is None else (concluded,)),
        ),
        events=(*main.events, *variants.events, *experiment.events, *traffic.events),
        requeue_after=min(requeues) if requeues else None,
    )
