"""The main predictor's rollout: which revision is stable, which is the canary, and how far.

Limits: one canary at a time (a newer revision supersedes it); a decision follows at
most 8 transitions that need no new facts (e.g. a passed check moves straight to the
next step's traffic), then waits for the next decision; only readiness and the canary
reading of :class:`Observed` are used, never a clock other than `now`.

Rules (its revision is the hash of `spec.predictor`):

- First revision: it is stable at once and takes all traffic.
- Any new revision first becomes the *canary*. Without a rollout block (or with
  `canaryTrafficPercent` absent/100, or when reverting to a revision that was stable
  before) it goes straight to *Promoting*: it is scaled to the stable's current size
  and takes all traffic only once that many replicas are Ready; the old stable keeps
  its size for a drain period and is then pruned (no rollout block) or kept at zero
  replicas as `previous` (rollout block: a GitOps revert reuses its Deployment).
- Manual canary (`canaryTrafficPercent: N`): the canary is sized from its share and
  gets N% once Ready; the stable keeps full capacity. Removing N (or 100) promotes.
- Progressive (`steps`, `interval`, `analysis`): each step's share moves once the canary
  is Ready at that size; every `interval` the analysis judges the window: pass advances
  a step (after the last one: promote), too few requests waits (the window grows), a
  failure counts, and `failureThreshold` failures (in this canary's whole rollout, as in
  Flagger; the step does not advance on a failure) roll back: 100% to stable,
  canary drained then scaled to zero, condition RolledBack with the measured values,
  a Warning event, and no new attempt until the predictor spec changes.
- Traffic never moves to a workload that is not Ready at the required size, and a
  workload that loses its traffic keeps its size for `drain_seconds` before shrinking.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from kubeserve.plan import DEFAULT_COMPONENT
from kubeserve.rollout.analysis import (
    AnalysisMetrics,
    MetricsUnavailable,
    Outcome,
    Verdict,
    evaluate,
    window_metrics,
)
from kubeserve.rollout.drain import retire, unretire
from kubeserve.rollout.observation import Observed
from kubeserve.rollout.policy import Policy, Replicas, Rollout
from kubeserve.rollout.revision import revision_hash
from kubeserve.rollout.settings import RolloutSettings
from kubeserve.rollout.state import (
    CanaryStatus,
    HistoryEntry,
    QualityStatus,
    RevisionStatus,
    RolloutState,
)
from kubeserve.rollout.state import Outcome as HistoryOutcome
from kubeserve.rollout.transition import Transition

MAIN = DEFAULT_COMPONENT

RETRY_SECONDS = 5.0
"""Requeue delay when a check is due but the operator brought no metrics."""

MAX_TRANSITIONS = 8
"""Transitions one decision follows without new facts (bounded, so a bug cannot spin)."""


@dataclass(frozen=True)
class _Inputs:
    """What every step of one canary transition reads (never changes)."""

    policy: Policy
    observed: Observed
    now: datetime
    settings: RolloutSettings

    @property
    def drain_until(self) -> datetime:
        """When a workload that loses its traffic now may shrink."""
        return self.settings.drain_until(self.now)


def canary_transition(
    policy: Policy,
    state: RolloutState,
    observed: Observed,
    now: datetime,
    settings: RolloutSettings,
) -> Transition:
    """Decide the main predictor: its stable, canary and previous revisions, their
    traffic percent and size, history, drains, events and progress."""
    inputs = _Inputs(policy, observed, now, settings)
    desired = revision_hash(policy.predictor)
    t = Transition(state)
    stable = state.stable
    if stable is None:
        first = RevisionStatus(
            revision=desired, percent=100, since=now, predictor=dict(policy.predictor)
        )
        t = _history(inputs, t.update(stable=first), desired, "Promoted", "first revision")
        return t.event("Normal", "RevisionCreated", f"revision {desired} serves the predictor")
    if desired == stable.revision:
        if state.canary is None:
            return t
        return _drop_canary(inputs, t, f"spec reverted to the stable revision {desired}")
    if state.canary is not None and state.canary.revision != desired:
        t = _drop_canary(inputs, t, f"superseded by revision {desired}")
    if t.state.canary is None:
        t = _start_canary(inputs, t, desired)
    for _ in range(MAX_TRANSITIONS):
        if t.state.canary is None:
            break
        t, advanced = _canary_step(inputs, t)
        if not advanced:
            break
    return t


def _canary(t: Transition) -> CanaryStatus:
    """The canary of a transition that has one."""
    canary = t.state.canary
    assert canary is not None
    return canary


def _stable(t: Transition) -> RevisionStatus:
    """The stable revision (every state past the first revision has one)."""
    stable = t.state.stable
    assert stable is not None
    return stable


def _history(
    inputs: _Inputs, t: Transition, revision: str, outcome: HistoryOutcome, message: str
) -> Transition:
    """Record how a revision's time as the rollout target ended."""
    rollout = inputs.policy.rollout
    limit = (rollout.history_limit if rollout else None) or inputs.settings.history_limit
    entry = HistoryEntry(revision=revision, time=inputs.now, outcome=outcome, message=message)
    return replace(t, state=t.state.recorded(entry, limit))


def _with_canary(t: Transition, **fields: Any) -> Transition:
    """The transition with these canary fields replaced."""
    return t.update(canary=_canary(t).model_copy(update=fields))


def _main_percent(t: Transition) -> Transition:
    """Keep the stable's percent the complement of the canary's."""
    stable = t.state.stable
    if stable is None:
        return t
    canary = t.state.canary
    percent = 100 - (canary.percent if canary is not None else 0)
    return t.update(stable=stable.model_copy(update={"percent": percent}))


def _drop_canary(inputs: _Inputs, t: Transition, why: str) -> Transition:
    """Abandon the canary because the spec moved on (a rolled-back one simply goes)."""
    canary = _canary(t)
    if canary.phase != "RolledBack":
        t = _history(inputs, t, canary.revision, "Superseded", why)
        t = t.event("Normal", "RevisionSuperseded", f"revision {canary.revision}: {why}")
        if canary.percent > 0:
            size = Replicas(canary.min_replicas, canary.max_replicas)
            t = t.update(
                retiring=retire(
                    t.state.retiring,
                    MAIN,
                    canary.revision,
                    size,
                    canary.predictor,
                    inputs.drain_until,
                )
            )
    return _main_percent(t.update(canary=None))


def _start_canary(inputs: _Inputs, t: Transition, desired: str) -> Transition:
    """Make the desired revision the canary (or promote it directly when fitting)."""
    state = t.state
    rollout = inputs.policy.rollout
    reused = state.previous is not None and state.previous.revision == desired
    known_good = state.promoted(desired) or reused
    canary = CanaryStatus(
        revision=desired,
        since=inputs.now,
        predictor=dict(inputs.policy.predictor),
        step=0 if rollout is not None and rollout.progressive else None,
    )
    t = t.update(
        previous=None if reused else state.previous,
        retiring=unretire(state.retiring, MAIN, desired),
        canary=canary,
    )
    if rollout is not None and not rollout.promotes and not known_good:
        return t.event(
            "Normal",
            "CanaryStarted",
            f"revision {desired} deploys as a canary of stable {_stable(t).revision}",
        )
    why = "reverting to a revision that was stable before" if known_good else "no canary"
    t = _enter_promotion(inputs, t, why)
    if reused:
        t = t.event(
            "Normal",
            "RevisionReused",
            f"revision {desired} is back; its existing Deployment is scaled up again",
        )
    return t


def _enter_promotion(inputs: _Inputs, t: Transition, why: str) -> Transition:
    """Size the canary like the stable; it takes all traffic once that many are Ready."""
    canary = _canary(t)
    serving = inputs.observed.ready_replicas((MAIN, _stable(t).revision))
    need = Replicas.of(canary.predictor).promotion_size(serving)
    t = _with_canary(
        t, phase="Promoting", promotion_replicas=need, window_started_at=None, baseline=None
    )
    return t.event(
        "Normal",
        "Promoting",
        f"promoting revision {canary.revision} ({why}): waiting for "
        f"{need} ready replicas before it takes all traffic",
    )


def _canary_step(inputs: _Inputs, t: Transition) -> tuple[Transition, bool]:
    """Advance the canary by one transition; say whether something changed."""
    canary = _canary(t)
    rollout = inputs.policy.rollout
    own = Replicas.of(canary.predictor)
    if canary.phase == "RolledBack":
        return _with_canary(t, percent=0, min_replicas=0, max_replicas=0), False
    if canary.phase == "Progressing" and (
        rollout is None
        or rollout.promotes
        or (rollout.progressive and (canary.step or 0) >= len(rollout.steps))
    ):
        why = "all steps passed" if rollout and rollout.progressive else "manual"
        return _enter_promotion(inputs, t, why), True
    if canary.phase == "Promoting":
        need = canary.promotion_replicas or own.min
        t = _with_canary(t, min_replicas=need, max_replicas=max(own.max, need))
        if inputs.observed.ready((MAIN, canary.revision), need):
            return _swap(inputs, t), True
        have = inputs.observed.ready_replicas((MAIN, canary.revision))
        return t.progressing(
            "Promoting",
            f"revision {canary.revision} needs {need} ready replicas before it takes all "
            f"traffic ({have} ready)",
        ), False
    assert rollout is not None
    return _progress_canary(inputs, t, rollout, own)


def _progress_canary(
    inputs: _Inputs, t: Transition, rollout: Rollout, own: Replicas
) -> tuple[Transition, bool]:
    """Move the canary's traffic toward its target share, then check it."""
    canary = _canary(t)
    step: int | None
    if rollout.progressive:
        step = min(canary.step or 0, len(rollout.steps) - 1)
        target = rollout.steps[step]
    else:
        step = None
        target = rollout.canary_traffic_percent or 0
    size = own.share(max(target, canary.percent))
    t = _with_canary(t, step=step, min_replicas=size.min, max_replicas=size.max)
    if canary.percent < target and not inputs.observed.ready((MAIN, canary.revision), size.min):
        have = inputs.observed.ready_replicas((MAIN, canary.revision))
        return t.progressing(
            "CanaryDeploying" if canary.percent == 0 else "CanaryScaling",
            f"canary {canary.revision} needs {size.min} ready replicas before it takes "
            f"{target}% of the traffic ({have} ready)",
        ), False
    if canary.percent != target:
        t = _main_percent(_with_canary(t, percent=target, **_new_window(inputs)))
        t = _with_canary(t, step_started_at=inputs.now)
        where = _where(_canary(t), rollout)
        return t.event("Normal", "CanaryWeight", f"canary {canary.revision} takes {where}"), True
    return _check(inputs, t, rollout)


def _new_window(inputs: _Inputs) -> dict[str, Any]:
    """Canary fields that start an analysis window now (with a pod-scrape baseline when
    one is at hand)."""
    reading = inputs.observed.canary_metrics
    return {
        "window_started_at": inputs.now,
        "baseline": dict(reading) if isinstance(reading, Mapping) else None,
    }


def _check(inputs: _Inputs, t: Transition, rollout: Rollout) -> tuple[Transition, bool]:
    """Run the analysis check when due; say whether the canary advanced a step."""
    interval = rollout.interval_seconds
    started = _canary(t).window_started_at
    if started is None:
        t = _with_canary(t, **_new_window(inputs))
        started = inputs.now
    canary = _canary(t)
    due_in = (started + timedelta(seconds=interval) - inputs.now).total_seconds()
    t = t.progressing("CanaryProgressing", f"canary {canary.revision} at {_where(canary, rollout)}")
    if rollout.analysis is None:
        if not rollout.progressive:
            return t, False  # manual canary without analysis: nothing to check
        if due_in > 0:
            return t.requeue(due_in).note(f"next step at {_clock(started, interval)}"), False
        verdict = Verdict(Outcome.PASS, [], f"{interval:.0f}s elapsed")
        return _apply_verdict(inputs, t, rollout, verdict)
    if due_in > 0:
        return t.requeue(due_in).note(f"next check at {_clock(started, interval)}"), False
    reading = inputs.observed.canary_metrics
    if reading is None:
        return t.requeue(RETRY_SECONDS).note("check due, waiting for metrics"), False
    metrics: AnalysisMetrics | MetricsUnavailable
    if isinstance(reading, Mapping):
        if canary.baseline is None:  # no counters from the window start: start now
            t = _with_canary(t, **_new_window(inputs)).requeue(interval)
            return t.note("first scrape of the canary taken; next check in one interval"), False
        metrics = window_metrics(dict(canary.baseline), reading)
    else:
        metrics = reading
    return _apply_verdict(inputs, t, rollout, evaluate(rollout.analysis, metrics))


def _apply_verdict(
    inputs: _Inputs, t: Transition, rollout: Rollout, verdict: Verdict
) -> tuple[Transition, bool]:
    """Wait (window grows), count a failure (maybe roll back), or pass (next step)."""
    interval = rollout.interval_seconds
    revision = _canary(t).revision
    if verdict.quality is not None:
        q = verdict.quality
        t = _with_canary(
            t,
            quality=QualityStatus(
                scored=q.scored,
                accuracy=q.accuracy,
                stable_scored=q.stable_scored,
                stable_accuracy=q.stable_accuracy,
            ),
        )
    if verdict.outcome is Outcome.WAIT:
        message = f"{'; '.join(verdict.reasons)} ({verdict.summary})"
        t = _with_canary(t, message=message)
        t = t.progressing(
            "WaitingForTraffic", f"canary {revision} at {_where(_canary(t), rollout)}"
        )
        return t.note(message).requeue(interval), False
    t = _with_canary(t, **_new_window(inputs)).requeue(interval)
    label = _step_label(_canary(t), rollout)
    if verdict.outcome is Outcome.FAIL:
        failed = _canary(t).failed_checks + 1
        threshold = rollout.analysis.failure_threshold if rollout.analysis else 1
        message = f"{'; '.join(verdict.reasons)} at {label} ({_plural(failed, 'failed check')})"
        t = _with_canary(t, failed_checks=failed, message=message)
        if failed >= threshold:
            return _rollback(inputs, t), False
        t = t.event(
            "Warning",
            "AnalysisFailed",
            f"canary {revision}: {message}, rollback at {_plural(threshold, 'failed check')}",
        )
        return t.note(f"last check failed: {message}"), False
    message = f"check passed at {label}: {verdict.summary}"
    t = _with_canary(t, message=message)
    if not rollout.progressive:
        return t.note(message), False
    t = _with_canary(t, step=(_canary(t).step or 0) + 1)
    return t.event("Normal", "AnalysisPassed", f"canary {revision}: {message}"), True


def _rollback(inputs: _Inputs, t: Transition) -> Transition:
    """Send all traffic back to stable and park the canary at zero replicas."""
    canary = _canary(t)
    size = Replicas(canary.min_replicas, canary.max_replicas)
    t = t.update(
        retiring=retire(
            t.state.retiring, MAIN, canary.revision, size, canary.predictor, inputs.drain_until
        )
    )
    t = _with_canary(
        t,
        phase="RolledBack",
        percent=0,
        min_replicas=0,
        max_replicas=0,
        window_started_at=None,
        baseline=None,
    )
    t = _history(inputs, _main_percent(t), canary.revision, "RolledBack", canary.message)
    return t.event(
        "Warning",
        "RolledBack",
        f"revision {canary.revision} rolled back to {_stable(t).revision}: {canary.message}",
    )


def _swap(inputs: _Inputs, t: Transition) -> Transition:
    """The promoted canary takes all traffic; the old stable drains, then leaves."""
    canary, old = _canary(t), _stable(t)
    t = t.update(
        retiring=retire(
            t.state.retiring,
            MAIN,
            old.revision,
            Replicas.of(old.predictor),
            old.predictor,
            inputs.drain_until,
        ),
        previous=RevisionStatus(
            revision=old.revision, percent=0, since=inputs.now, predictor=old.predictor
        ),
        stable=RevisionStatus(
            revision=canary.revision, percent=100, since=inputs.now, predictor=canary.predictor
        ),
        canary=None,
    )
    t = _history(inputs, t, canary.revision, "Promoted", f"promoted, replacing {old.revision}")
    return t.event(
        "Normal",
        "Promoted",
        f"revision {canary.revision} takes all traffic (was {old.revision})",
    )


def _where(canary: CanaryStatus, rollout: Rollout) -> str:
    """Describe the canary's current share, e.g. `25% (step 2 of 3)`."""
    if rollout.progressive and canary.step is not None:
        return f"{canary.percent}% (step {canary.step + 1} of {len(rollout.steps)})"
    return f"{canary.percent}%"


def _step_label(canary: CanaryStatus, rollout: Rollout) -> str:
    """`step 25%` (progressive) or `25% canary traffic` (manual)."""
    if rollout.progressive:
        return f"step {canary.percent}%"
    return f"{canary.percent}% canary traffic"


def _plural(count: int, word: str) -> str:
    """Return e.g. `1 check` / `3 checks`."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def _clock(start: datetime, seconds: float) -> str:
    """RFC 3339 time `seconds` after `start` (absolute, so idle passes write nothing new)."""
    return (start + timedelta(seconds=seconds)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
