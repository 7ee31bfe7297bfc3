"""kstatus health: the Reconciling and Stalled conditions shown beside Ready.

Limits: both are *abnormal-true* conditions (the kstatus conventions of
sigs.k8s.io/cli-utils, which Flux's health checks use): they are present only while
True and absent otherwise, so a healthy InferenceService shows neither. They are never
both present: Stalled wins, because an object that cannot progress is not progressing.
They are computed from the other conditions of the same pass only, so an idle pass
computes the same ones and writes nothing. Whether the operator has seen the newest
generation is not a condition: every condition and ``status.observedGeneration`` carry
the generation the pass read, and a reader compares it with ``metadata.generation``.

Stalled (the operator cannot progress until someone changes something):

* the route kind cannot express the traffic plan (RoutesReady=False),
* the analysis rolled the canary back (RolledBack=True; the stable serves until the
  predictor spec changes),
* a Deployment of the plan exceeded its progress deadline (its pods keep failing or
  cannot be scheduled; the Deployment controller says so with ProgressDeadlineExceeded).

Reconciling (the operator works toward the spec): a rollout, a variant update or a
drain is in progress, or the serving replicas are not ready yet. A manual canary that
holds its share (``canaryTrafficPercent``, ready, waiting for a person to promote it) is
a steady state the spec asked for, not reconciling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kubeserve.rollout.decision import Condition, WorkloadKey

RECONCILING = "Reconciling"
STALLED = "Stalled"
HELD_REASON = "CanaryProgressing"
"""The RolloutProgressing reason of a canary that reached its share (see the canary stage)."""
DEADLINE_REASON = "ProgressDeadlineExceeded"


def _find(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def health_conditions(
    *,
    conditions: Sequence[Condition],
    stalled_workloads: Mapping[WorkloadKey, str],
    manual_canary: bool,
) -> tuple[Condition, ...]:
    """Reconciling or Stalled (or neither) for a pass.

    `conditions` are the pass's others (PredictorReady, RoutesReady, Rollout*);
    `stalled_workloads` maps each workload of the plan whose Deployment exceeded its
    progress deadline to the Deployment's message; `manual_canary` says the spec asks
    for a manual canary share (so a canary at that share is held, not progressing).
    """
    routes = _find(conditions, "RoutesReady")
    if routes is not None and routes.status == "False":
        return (Condition(STALLED, "True", routes.reason, routes.message),)
    rolled_back = _find(conditions, "RolledBack")
    progressing = _find(conditions, "RolloutProgressing")
    if rolled_back is not None and rolled_back.status == "True":
        message = progressing.message if progressing is not None else rolled_back.message
        return (Condition(STALLED, "True", "RolledBack", f"{message}: {rolled_back.message}"),)
    if stalled_workloads:
        message = "; ".join(
            f"{component} {revision}: {why}"
            for (component, revision), why in sorted(stalled_workloads.items())
        )
        return (Condition(STALLED, "True", DEADLINE_REASON, message),)
    held = manual_canary and progressing is not None and progressing.reason == HELD_REASON
    if progressing is not None and progressing.status == "True" and not held:
        return (Condition(RECONCILING, "True", progressing.reason, progressing.message),)
    predictor = _find(conditions, "PredictorReady")
    if predictor is not None and predictor.status != "True":
        return (Condition(RECONCILING, "True", "PredictorNotReady", predictor.message),)
    return ()
