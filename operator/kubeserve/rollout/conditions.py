"""The rollout's status conditions: PredictorReady, RolloutProgressing, RolloutSucceeded
and RolledBack (Kubernetes condition conventions; the status writer adds the times).

Limits: computed from the state the stages left, what was observed, and the stages'
progress only; messages hold absolute times at most (never "in 30s"), so an idle pass
computes identical conditions and writes nothing. Ready and RoutesReady are the
controller's: they depend on the applied children, not on the rollout alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kubeserve.plan import DEFAULT_COMPONENT
from kubeserve.rollout.observation import Observed
from kubeserve.rollout.policy import Replicas
from kubeserve.rollout.state import RolloutState
from kubeserve.rollout.transition import Progress


@dataclass(frozen=True)
class Condition:
    """A status condition (Kubernetes conventions; times are added by the status writer)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str


def rollout_conditions(
    state: RolloutState, observed: Observed, progress: Progress | None
) -> tuple[Condition, ...]:
    """PredictorReady, then RolloutProgressing, RolloutSucceeded and RolledBack, for a
    state whose stable revision is set; `progress` says why the rollout is not done."""
    return (_predictor_ready(state, observed), *_rollout(state, progress))


def _predictor_ready(state: RolloutState, observed: Observed) -> Condition:
    """True when the stable and every variant's serving revision are Ready at min size."""
    assert state.stable is not None
    serving = [(DEFAULT_COMPONENT, state.stable.revision, Replicas.of(state.stable.predictor).min)]
    serving += [
        (name, v.revision, Replicas.of(v.predictor).min)
        for name, v in sorted(state.variants.items())
    ]
    lines, missing = [], []
    for component, revision, need in serving:
        have = observed.ready_replicas((component, revision))
        line = f"{component} {revision}: {have}/{need} ready"
        lines.append(line)
        if not observed.ready((component, revision), need):
            missing.append(line)
    if missing:
        return Condition("PredictorReady", "False", "NotReady", "; ".join(missing))
    return Condition("PredictorReady", "True", "Ready", "; ".join(lines))


def _rollout(state: RolloutState, progress: Progress | None) -> tuple[Condition, ...]:
    """RolloutProgressing, RolloutSucceeded and RolledBack."""
    assert state.stable is not None
    canary = state.canary
    stable = state.stable.revision
    if canary is not None and canary.phase == "RolledBack":
        return (
            Condition(
                "RolloutProgressing",
                "False",
                "RolledBack",
                f"revision {canary.revision} was rolled back; stable {stable} serves all "
                "traffic until the predictor spec changes",
            ),
            Condition("RolloutSucceeded", "False", "RolledBack", canary.message),
            Condition("RolledBack", "True", "AnalysisFailed", canary.message),
        )
    not_rolled_back = Condition("RolledBack", "False", "NotRolledBack", "")
    if progress is not None or canary is not None:
        if progress is None:
            progress = Progress(
                "CanaryProgressing", f"canary {canary.revision if canary else ''} in progress"
            )
        return (
            Condition("RolloutProgressing", "True", progress.reason, progress.message),
            Condition("RolloutSucceeded", "False", "InProgress", progress.message),
            not_rolled_back,
        )
    succeeded = Condition(
        "RolloutSucceeded", "True", "Stable", f"revision {stable} serves the predictor"
    )
    if state.retiring:
        names = ", ".join(sorted({r.revision for r in state.retiring}))
        return (
            Condition(
                "RolloutProgressing",
                "True",
                "Draining",
                f"old revision(s) {names} drain before scaling down",
            ),
            succeeded,
            not_rolled_back,
        )
    return (
        Condition("RolloutProgressing", "False", "Complete", f"revision {stable} is stable"),
        succeeded,
        not_rolled_back,
    )
