"""The rollout decision: a pure function from what is wanted and seen to what to do next.

`decide(spec, state, observed, now)` returns the next rollout state (to store in
status), the :class:`~kubeserve.plan.TrafficPlan` for the builders, the conditions, the
events to emit and when to be called again. It never talks to the API server, so every
rule below is a plain unit test.

Rules for the main predictor (its revision is the hash of `spec.predictor`):

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

A/B variants are replaced the same Ready-gated way (no canary per variant); the main
predictor gets `100 - sum(variant weights)` of the default traffic, split between
stable and canary; header matches and the mirror point at the variants' serving
revisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from kubeserve.plan import (
    DEFAULT_COMPONENT,
    Backend,
    HeaderRoute,
    Mirror,
    TrafficPlan,
    Workload,
)
from kubeserve.rollout.analysis import (
    AnalysisMetrics,
    MetricsUnavailable,
    Outcome,
    PodCounters,
    Snapshot,
    Verdict,
    evaluate,
    window_metrics,
)
from kubeserve.rollout.policy import Policy, Replicas, Rollout
from kubeserve.rollout.revision import revision_hash
from kubeserve.rollout.state import (
    DEFAULT_HISTORY_LIMIT,
    CanaryStatus,
    HistoryEntry,
    PendingRevision,
    RetiringWorkload,
    RevisionStatus,
    RolloutState,
    VariantState,
)
from kubeserve.rollout.state import Outcome as HistoryOutcome

MAIN = DEFAULT_COMPONENT

Reading = AnalysisMetrics | Snapshot | MetricsUnavailable
"""Canary metrics: a Prometheus answer over the window, a pod scrape, or a failure."""

WorkloadKey = tuple[str, str]
"""(component, revision)."""

_RETRY_SECONDS = 5.0
"""Requeue delay when a check is due but the operator brought no metrics."""


@dataclass(frozen=True)
class WorkloadObservation:
    """What the cluster shows for one workload's Deployment."""

    ready: bool
    """The Deployment finished rolling out and is Available."""
    ready_replicas: int


@dataclass(frozen=True)
class Observed:
    """Facts the operator gathered before deciding."""

    workloads: Mapping[WorkloadKey, WorkloadObservation] = field(default_factory=dict)
    canary_metrics: Reading | None = None
    """Metrics of the canary, when :func:`metrics_request` asked for them."""


@dataclass(frozen=True)
class Condition:
    """A status condition (Kubernetes conventions; times are added by the status writer)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to emit on the InferenceService."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class RolloutSettings:
    """Operator-wide rollout settings."""

    history_limit: int = DEFAULT_HISTORY_LIMIT
    drain_seconds: float = 10.0
    """How long a workload keeps its size after its traffic moved away."""


@dataclass(frozen=True)
class MetricsRequest:
    """Which canary to measure, and over how long a window (for Prometheus queries)."""

    component: str
    revision: str
    window_seconds: float
    custom_query: str | None = None


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


def metrics_request(
    spec: Mapping[str, Any], state: RolloutState, now: datetime
) -> MetricsRequest | None:
    """Return what to measure before :func:`decide`, or None when no analysis runs."""
    policy = Policy.from_spec(spec)
    canary = state.canary
    rollout = policy.rollout
    if canary is None or canary.phase != "Progressing" or rollout is None:
        return None
    if rollout.analysis is None or revision_hash(policy.predictor) != canary.revision:
        return None
    started = canary.window_started_at
    window = rollout.interval_seconds if started is None else (now - started).total_seconds()
    custom = rollout.analysis.custom
    return MetricsRequest(
        component=MAIN,
        revision=canary.revision,
        window_seconds=max(1.0, window),
        custom_query=None if custom is None else custom.query,
    )


def decide(
    spec: Mapping[str, Any],
    state: RolloutState | None,
    observed: Observed,
    now: datetime,
    settings: RolloutSettings | None = None,
) -> Decision:
    """Return the next state, traffic plan, conditions, events and requeue delay."""
    return _Decider(spec, state, observed, now, settings or RolloutSettings()).run()


def _plural(count: int, word: str) -> str:
    """Return e.g. `1 check` / `3 checks`."""
    return f"{count} {word}{'' if count == 1 else 's'}"


class _Decider:
    """One run of the decision; mutates a private copy of the state."""

    def __init__(
        self,
        spec: Mapping[str, Any],
        state: RolloutState | None,
        observed: Observed,
        now: datetime,
        settings: RolloutSettings,
    ) -> None:
        self.policy = Policy.from_spec(spec)
        self.st = RolloutState() if state is None else state.model_copy(deep=True)
        self.observed = observed
        self.now = now
        self.settings = settings
        self.events: list[Event] = []
        self.requeues: list[float] = []
        self.progress: tuple[str, str] | None = None

    # -- helpers ---------------------------------------------------------------------

    def _event(self, kind: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Event(kind, reason, message))

    def _history(self, revision: str, outcome: HistoryOutcome, message: str) -> None:
        rollout = self.policy.rollout
        limit = (rollout.history_limit if rollout else None) or self.settings.history_limit
        self.st.record(
            HistoryEntry(revision=revision, time=self.now, outcome=outcome, message=message),
            limit,
        )

    def _ready_replicas(self, component: str, revision: str) -> int:
        obs = self.observed.workloads.get((component, revision))
        return obs.ready_replicas if obs is not None else 0

    def _ready(self, component: str, revision: str, replicas: int) -> bool:
        """Whether the workload is Ready with at least `replicas` ready replicas."""
        obs = self.observed.workloads.get((component, revision))
        return obs is not None and obs.ready and obs.ready_replicas >= replicas

    def _requeue(self, seconds: float) -> None:
        self.requeues.append(max(0.0, seconds))

    def _retire(
        self, component: str, revision: str, size: Replicas, predictor: Mapping[str, Any]
    ) -> None:
        """Keep a workload at `size` for the drain period after its traffic moved away."""
        if size.max <= 0:
            return
        self._unretire(component, revision)
        until = self.now + timedelta(seconds=self.settings.drain_seconds)
        self.st.retiring.append(
            RetiringWorkload(
                component=component,
                revision=revision,
                min_replicas=size.min,
                max_replicas=size.max,
                until=until,
                predictor=dict(predictor),
            )
        )

    def _unretire(self, component: str, revision: str) -> None:
        self.st.retiring = [
            r for r in self.st.retiring if (r.component, r.revision) != (component, revision)
        ]

    def _promotion_size(self, own: Replicas, serving: tuple[str, str]) -> int:
        """Ready replicas a newcomer needs: the serving workload's current size, in bounds."""
        current = self._ready_replicas(*serving)
        return min(max(current, own.min, 1), max(own.max, 1))

    # -- the run ---------------------------------------------------------------------

    def run(self) -> Decision:
        """Decide the main predictor, then the variants, then build the outputs."""
        self.st.retiring = [r for r in self.st.retiring if r.until > self.now]
        self._main()
        self._variants()
        for r in self.st.retiring:
            self._requeue((r.until - self.now).total_seconds())
        plan, predictors = self._plan()
        return Decision(
            state=self.st,
            plan=plan,
            predictors=predictors,
            conditions=self._conditions(),
            events=tuple(self.events),
            requeue_after=min(self.requeues) if self.requeues else None,
        )

    # -- main predictor --------------------------------------------------------------

    def _main(self) -> None:
        st = self.st
        desired = revision_hash(self.policy.predictor)
        if st.stable is None:
            st.stable = RevisionStatus(
                revision=desired, percent=100, since=self.now, predictor=dict(self.policy.predictor)
            )
            self._history(desired, "Promoted", "first revision")
            self._event("Normal", "RevisionCreated", f"revision {desired} serves the predictor")
            return
        if desired == st.stable.revision:
            if st.canary is not None:
                self._drop_canary(f"spec reverted to the stable revision {desired}")
            return
        if st.canary is not None and st.canary.revision != desired:
            self._drop_canary(f"superseded by revision {desired}")
        if st.canary is None:
            self._start_canary(desired)
        for _ in range(8):  # follow transitions that need no new facts (bounded)
            if st.canary is None or not self._canary_step():
                break

    def _drop_canary(self, why: str) -> None:
        """Abandon the canary because the spec moved on (a rolled-back one simply goes)."""
        canary = self.st.canary
        assert canary is not None
        if canary.phase != "RolledBack":
            self._history(canary.revision, "Superseded", why)
            self._event("Normal", "RevisionSuperseded", f"revision {canary.revision}: {why}")
            if canary.percent > 0:
                self._retire(
                    MAIN,
                    canary.revision,
                    Replicas(canary.min_replicas, canary.max_replicas),
                    canary.predictor,
                )
        self.st.canary = None
        self._set_main_percent()

    def _start_canary(self, desired: str) -> None:
        """Make the desired revision the canary (or promote it directly when fitting)."""
        st = self.st
        assert st.stable is not None
        rollout = self.policy.rollout
        known_good = st.promoted(desired) or (
            st.previous is not None and st.previous.revision == desired
        )
        reused = st.previous is not None and st.previous.revision == desired
        if reused:
            st.previous = None
        self._unretire(MAIN, desired)
        st.canary = CanaryStatus(
            revision=desired,
            since=self.now,
            predictor=dict(self.policy.predictor),
            step=0 if rollout is not None and rollout.progressive else None,
        )
        if rollout is None or rollout.promotes or known_good:
            why = "reverting to a revision that was stable before" if known_good else "no canary"
            self._enter_promotion(why)
            if reused:
                self._event(
                    "Normal",
                    "RevisionReused",
                    f"revision {desired} is back; its existing Deployment is scaled up again",
                )
        else:
            self._event(
                "Normal",
                "CanaryStarted",
                f"revision {desired} deploys as a canary of stable {st.stable.revision}",
            )

    def _enter_promotion(self, why: str) -> None:
        canary = self.st.canary
        stable = self.st.stable
        assert canary is not None
        assert stable is not None
        own = Replicas.of(canary.predictor)
        canary.phase = "Promoting"
        canary.promotion_replicas = self._promotion_size(own, (MAIN, stable.revision))
        canary.window_started_at = None
        canary.baseline = None
        self._event(
            "Normal",
            "Promoting",
            f"promoting revision {canary.revision} ({why}): waiting for "
            f"{canary.promotion_replicas} ready replicas before it takes all traffic",
        )

    def _canary_step(self) -> bool:
        """Advance the canary by one transition; return whether something changed."""
        canary = self.st.canary
        assert canary is not None
        rollout = self.policy.rollout
        own = Replicas.of(canary.predictor)
        if canary.phase == "RolledBack":
            canary.percent = 0
            canary.min_replicas = canary.max_replicas = 0
            return False
        if canary.phase == "Progressing" and (
            rollout is None
            or rollout.promotes
            or (rollout.progressive and (canary.step or 0) >= len(rollout.steps))
        ):
            self._enter_promotion(
                "all steps passed" if rollout and rollout.progressive else "manual"
            )
            return True
        if canary.phase == "Promoting":
            need = canary.promotion_replicas or own.min
            canary.min_replicas, canary.max_replicas = need, max(own.max, need)
            if self._ready(MAIN, canary.revision, need):
                self._swap()
                return True
            have = self._ready_replicas(MAIN, canary.revision)
            self.progress = (
                "Promoting",
                f"revision {canary.revision} needs {need} ready replicas before it takes all "
                f"traffic ({have} ready)",
            )
            return False
        assert rollout is not None
        return self._progress_canary(canary, rollout, own)

    def _progress_canary(self, canary: CanaryStatus, rollout: Rollout, own: Replicas) -> bool:
        """Move the canary's traffic toward its target share, then check it."""
        if rollout.progressive:
            canary.step = min(canary.step or 0, len(rollout.steps) - 1)
            target = rollout.steps[canary.step]
        else:
            canary.step = None
            target = rollout.canary_traffic_percent or 0
        size = own.share(max(target, canary.percent))
        canary.min_replicas, canary.max_replicas = size.min, size.max
        if canary.percent < target and not self._ready(MAIN, canary.revision, size.min):
            have = self._ready_replicas(MAIN, canary.revision)
            self.progress = (
                "CanaryDeploying" if canary.percent == 0 else "CanaryScaling",
                f"canary {canary.revision} needs {size.min} ready replicas before it takes "
                f"{target}% of the traffic ({have} ready)",
            )
            return False
        if canary.percent != target:
            canary.percent = target
            self._set_main_percent()
            self._start_window()
            canary.step_started_at = self.now
            self._event("Normal", "CanaryWeight", f"canary {canary.revision} takes {self._where()}")
            return True
        return self._check(canary, rollout)

    def _where(self) -> str:
        """Describe the canary's current share, e.g. `25% (step 2 of 3)`."""
        canary = self.st.canary
        rollout = self.policy.rollout
        assert canary is not None
        if rollout is not None and rollout.progressive and canary.step is not None:
            return f"{canary.percent}% (step {canary.step + 1} of {len(rollout.steps)})"
        return f"{canary.percent}%"

    def _start_window(self) -> None:
        """Start a new analysis window now (with a pod-scrape baseline when one is at hand)."""
        canary = self.st.canary
        assert canary is not None
        canary.window_started_at = self.now
        reading = self.observed.canary_metrics
        canary.baseline = dict(reading) if isinstance(reading, Mapping) else None

    def _check(self, canary: CanaryStatus, rollout: Rollout) -> bool:
        """Run the analysis check when due; return whether the canary advanced a step."""
        interval = rollout.interval_seconds
        started = canary.window_started_at
        if started is None:
            self._start_window()
            started = self.now
        due_in = (started + timedelta(seconds=interval) - self.now).total_seconds()
        self.progress = ("CanaryProgressing", f"canary {canary.revision} at {self._where()}")
        if rollout.analysis is None:
            if not rollout.progressive:
                return False  # manual canary without analysis: nothing to check
            if due_in > 0:
                self._requeue(due_in)
                self._note(f"next step at {_clock(started, interval)}")
                return False
            verdict = Verdict(Outcome.PASS, [], f"{interval:.0f}s elapsed")
        else:
            if due_in > 0:
                self._requeue(due_in)
                self._note(f"next check at {_clock(started, interval)}")
                return False
            reading = self.observed.canary_metrics
            if reading is None:
                self._requeue(_RETRY_SECONDS)
                self._note("check due, waiting for metrics")
                return False
            if isinstance(reading, Mapping):
                if canary.baseline is None:  # no counters from the window start: start now
                    self._start_window()
                    self._requeue(interval)
                    self._note("first scrape of the canary taken; next check in one interval")
                    return False
                metrics: AnalysisMetrics | MetricsUnavailable = window_metrics(
                    _counters(canary.baseline), reading
                )
            else:
                metrics = reading
            verdict = evaluate(rollout.analysis, metrics)
        return self._apply_verdict(canary, rollout, verdict)

    def _note(self, text: str) -> None:
        """Append a detail to the progress message."""
        if self.progress is not None:
            reason, message = self.progress
            self.progress = (reason, f"{message}; {text}")

    def _apply_verdict(self, canary: CanaryStatus, rollout: Rollout, verdict: Verdict) -> bool:
        interval = rollout.interval_seconds
        if verdict.outcome is Outcome.WAIT:
            canary.message = f"{'; '.join(verdict.reasons)} ({verdict.summary})"
            self.progress = ("WaitingForTraffic", f"canary {canary.revision} at {self._where()}")
            self._note(canary.message)
            self._requeue(interval)
            return False
        self._start_window()
        self._requeue(interval)
        if verdict.outcome is Outcome.FAIL:
            canary.failed_checks += 1
            threshold = rollout.analysis.failure_threshold if rollout.analysis else 1
            detail = f"{'; '.join(verdict.reasons)} at {self._step_label()}"
            canary.message = f"{detail} ({_plural(canary.failed_checks, 'failed check')})"
            if canary.failed_checks >= threshold:
                self._rollback(canary)
                return False
            self._event(
                "Warning",
                "AnalysisFailed",
                f"canary {canary.revision}: {canary.message}, "
                f"rollback at {_plural(threshold, 'failed check')}",
            )
            self._note(f"last check failed: {canary.message}")
            return False
        canary.message = f"check passed at {self._step_label()}: {verdict.summary}"
        if not rollout.progressive:
            self._note(canary.message)
            return False
        canary.step = (canary.step or 0) + 1
        self._event("Normal", "AnalysisPassed", f"canary {canary.revision}: {canary.message}")
        return True

    def _step_label(self) -> str:
        """`step 25%` (progressive) or `25% canary traffic` (manual)."""
        canary = self.st.canary
        rollout = self.policy.rollout
        assert canary is not None
        if rollout is not None and rollout.progressive:
            return f"step {canary.percent}%"
        return f"{canary.percent}% canary traffic"

    def _rollback(self, canary: CanaryStatus) -> None:
        """Send all traffic back to stable and park the canary at zero replicas."""
        stable = self.st.stable
        assert stable is not None
        self._retire(
            MAIN,
            canary.revision,
            Replicas(canary.min_replicas, canary.max_replicas),
            canary.predictor,
        )
        canary.phase = "RolledBack"
        canary.percent = 0
        canary.min_replicas = canary.max_replicas = 0
        canary.window_started_at = None
        canary.baseline = None
        self._set_main_percent()
        self._history(canary.revision, "RolledBack", canary.message)
        self._event(
            "Warning",
            "RolledBack",
            f"revision {canary.revision} rolled back to {stable.revision}: {canary.message}",
        )

    def _swap(self) -> None:
        """The promoted canary takes all traffic; the old stable drains, then leaves."""
        st = self.st
        canary, old = st.canary, st.stable
        assert canary is not None
        assert old is not None
        self._retire(MAIN, old.revision, Replicas.of(old.predictor), old.predictor)
        st.previous = RevisionStatus(
            revision=old.revision, percent=0, since=self.now, predictor=old.predictor
        )
        st.stable = RevisionStatus(
            revision=canary.revision, percent=100, since=self.now, predictor=canary.predictor
        )
        st.canary = None
        self._history(canary.revision, "Promoted", f"promoted, replacing {old.revision}")
        self._event(
            "Normal",
            "Promoted",
            f"revision {canary.revision} takes all traffic (was {old.revision})",
        )

    def _set_main_percent(self) -> None:
        """Keep the stable's percent the complement of the canary's."""
        if self.st.stable is not None:
            canary = self.st.canary
            self.st.stable.percent = 100 - (canary.percent if canary is not None else 0)

    # -- variants --------------------------------------------------------------------

    def _variants(self) -> None:
        st = self.st
        for variant in self.policy.variants:
            desired = revision_hash(variant.predictor)
            current = st.variants.get(variant.name)
            if current is None:
                st.variants[variant.name] = VariantState(
                    revision=desired, since=self.now, predictor=dict(variant.predictor)
                )
                self._event(
                    "Normal", "VariantCreated", f"variant {variant.name} serves revision {desired}"
                )
                continue
            if desired == current.revision:
                current.pending = None
                continue
            if current.pending is None or current.pending.revision != desired:
                own = Replicas.of(variant.predictor)
                current.pending = PendingRevision(
                    revision=desired,
                    predictor=dict(variant.predictor),
                    replicas=self._promotion_size(own, (variant.name, current.revision)),
                )
                self._event(
                    "Normal",
                    "VariantUpdating",
                    f"variant {variant.name}: revision {desired} deploys to replace "
                    f"{current.revision}",
                )
            pending = current.pending
            if self._ready(variant.name, pending.revision, pending.replicas):
                self._retire(
                    variant.name,
                    current.revision,
                    Replicas.of(current.predictor),
                    current.predictor,
                )
                self._event(
                    "Normal",
                    "VariantUpdated",
                    f"variant {variant.name} serves revision {pending.revision} "
                    f"(was {current.revision})",
                )
                current.revision, current.predictor = pending.revision, pending.predictor
                current.since, current.pending = self.now, None
            elif self.progress is None:
                have = self._ready_replicas(variant.name, pending.revision)
                self.progress = (
                    "VariantUpdating",
                    f"variant {variant.name} revision {pending.revision} needs "
                    f"{pending.replicas} ready replicas ({have} ready)",
                )
        wanted = {v.name for v in self.policy.variants}
        for name in sorted(set(st.variants) - wanted):
            gone = st.variants.pop(name)
            self._retire(name, gone.revision, Replicas.of(gone.predictor), gone.predictor)
            self._event("Normal", "VariantRemoved", f"variant {name} removed from the spec")

    # -- outputs ---------------------------------------------------------------------

    def _plan(self) -> tuple[TrafficPlan, dict[WorkloadKey, Mapping[str, Any]]]:
        st = self.st
        stable = st.stable
        assert stable is not None
        sizes: dict[WorkloadKey, Replicas] = {}
        predictors: dict[WorkloadKey, Mapping[str, Any]] = {}
        parked: dict[WorkloadKey, Mapping[str, Any]] = {}  # kept at 0 unless draining

        sizes[(MAIN, stable.revision)] = Replicas.of(stable.predictor)
        predictors[(MAIN, stable.revision)] = stable.predictor
        canary = st.canary
        if canary is not None:
            key = (MAIN, canary.revision)
            predictors[key] = canary.predictor
            if canary.phase == "RolledBack":
                parked[key] = canary.predictor
            else:
                sizes[key] = Replicas(canary.min_replicas, canary.max_replicas)
        if st.previous is not None and self.policy.rollout is not None:
            parked.setdefault((MAIN, st.previous.revision), st.previous.predictor)
        for name, variant in st.variants.items():
            sizes[(name, variant.revision)] = Replicas.of(variant.predictor)
            predictors[(name, variant.revision)] = variant.predictor
            if variant.pending is not None:
                own = Replicas.of(variant.pending.predictor)
                key = (name, variant.pending.revision)
                sizes[key] = Replicas(
                    variant.pending.replicas, max(own.max, variant.pending.replicas)
                )
                predictors[key] = variant.pending.predictor
        for r in st.retiring:
            key = (r.component, r.revision)
            if key not in sizes:
                sizes[key] = Replicas(r.min_replicas, r.max_replicas)
                predictors[key] = r.predictor
        for key, spec in parked.items():
            if key not in sizes:
                sizes[key] = Replicas(0, 0)
                predictors.setdefault(key, spec)
        workloads = tuple(
            Workload(component=c, revision=r, min_replicas=s.min, max_replicas=s.max)
            for (c, r), s in sorted(sizes.items())
        )
        return self._routes(workloads), {k: predictors[k] for k in sorted(sizes)}

    def _routes(self, workloads: tuple[Workload, ...]) -> TrafficPlan:
        st = self.st
        stable = st.stable
        assert stable is not None
        main_share = self.policy.main_weight
        canary = st.canary
        canary_percent = canary.percent if canary is not None else 0
        canary_weight = round(main_share * canary_percent / 100)
        candidates = [Backend(MAIN, stable.revision, main_share - canary_weight)]
        if canary is not None:
            candidates.append(Backend(MAIN, canary.revision, canary_weight))
        header_routes: list[HeaderRoute] = []
        for variant in self.policy.variants:
            serving = st.variants[variant.name].revision
            candidates.append(Backend(variant.name, serving, variant.weight))
            if variant.headers:
                header_routes.append(
                    HeaderRoute(variant.headers, Backend(variant.name, serving, 100))
                )
        mirror: Mirror | None = None
        if self.policy.mirror is not None:
            target = st.variants.get(self.policy.mirror.variant)
            if target is None:
                self._event(
                    "Warning",
                    "MirrorTargetUnknown",
                    f"mirror names variant {self.policy.mirror.variant!r}, which does not exist",
                )
            else:
                mirror = Mirror(
                    Backend(self.policy.mirror.variant, target.revision, 100),
                    self.policy.mirror.percent,
                )
        return TrafficPlan(
            workloads=workloads,
            backends=tuple(b for b in candidates if b.weight > 0),
            header_routes=tuple(header_routes),
            mirror=mirror,
        )

    def _conditions(self) -> tuple[Condition, ...]:
        return (self._predictor_ready(), *self._rollout_conditions())

    def _predictor_ready(self) -> Condition:
        st = self.st
        assert st.stable is not None
        serving = [(MAIN, st.stable.revision, Replicas.of(st.stable.predictor).min)]
        serving += [
            (name, v.revision, Replicas.of(v.predictor).min)
            for name, v in sorted(st.variants.items())
        ]
        lines, missing = [], []
        for component, revision, need in serving:
            have = self._ready_replicas(component, revision)
            line = f"{component} {revision}: {have}/{need} ready"
            lines.append(line)
            if not self._ready(component, revision, need):
                missing.append(line)
        if missing:
            return Condition("PredictorReady", "False", "NotReady", "; ".join(missing))
        return Condition("PredictorReady", "True", "Ready", "; ".join(lines))

    def _rollout_conditions(self) -> tuple[Condition, ...]:
        st = self.st
        assert st.stable is not None
        canary = st.canary
        stable = st.stable.revision
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
        if self.progress is not None or canary is not None:
            reason, message = self.progress or (
                "CanaryProgressing",
                f"canary {canary.revision if canary else ''} in progress",
            )
            return (
                Condition("RolloutProgressing", "True", reason, message),
                Condition("RolloutSucceeded", "False", "InProgress", message),
                not_rolled_back,
            )
        succeeded = Condition(
            "RolloutSucceeded", "True", "Stable", f"revision {stable} serves the predictor"
        )
        if st.retiring:
            names = ", ".join(sorted({r.revision for r in st.retiring}))
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


def _clock(start: datetime, seconds: float) -> str:
    """RFC 3339 time `seconds` after `start` (absolute, so idle passes write nothing new)."""
    return (start + timedelta(seconds=seconds)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _counters(baseline: Mapping[str, PodCounters]) -> Snapshot:
    """Return a stored baseline as a snapshot."""
    return dict(baseline)
