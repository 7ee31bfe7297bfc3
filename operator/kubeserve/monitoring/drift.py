"""The drift decision: a pure function from PSI readings over time to a condition.

Limits: it watches the stable revision of the main predictor only (the model users get);
a new stable revision starts from nothing (a new model has a new reference profile).
Times above the threshold are counted between reconcile passes, so a dip below the
threshold between two passes is not seen; a failed reading stops no clock and starts
none. The condition's message holds feature names and absolute times only (PSI values
move with every request), so an idle pass writes nothing; the values go in the Event
and the webhook's CloudEvent, which are sent once per detection.

``DriftDetected`` (present while ``spec.monitoring.drift`` is set): True once a
feature's PSI stayed above its threshold for ``for``; False with reason ``DriftPending``
while one is above but not for long enough, ``NoDrift`` when all are under, ``NoData``
before the runtime reported any PSI (no reference_profile.json, or no traffic yet);
Unknown ``MetricsUnavailable`` when the reading failed and no drift was detected. It
is informational: Ready and the kstatus conditions ignore it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from kubeserve.api import v1alpha1 as api
from kubeserve.rollout.decision import Condition, Event
from kubeserve.rollout.policy import parse_duration

DRIFT_DETECTED = "DriftDetected"
RETRY_SECONDS = 30.0
"""Delay before a webhook delivery that failed is tried again."""


@dataclass(frozen=True)
class DriftPolicy:
    """spec.monitoring.drift, read once per pass."""

    threshold: float
    features: Mapping[str, float]
    for_seconds: float
    webhook: str | None = None

    @classmethod
    def from_spec(cls, spec: api.DriftMonitoring) -> DriftPolicy:
        """Read a validated spec.monitoring.drift."""
        return cls(
            threshold=spec.threshold,
            features=dict(spec.features or {}),
            for_seconds=parse_duration(spec.for_),
            webhook=spec.webhook,
        )

    def limit(self, feature: str) -> float:
        """The PSI threshold of `feature`."""
        return self.features.get(feature, self.threshold)


class DriftState(BaseModel):
    """What the decision remembers between passes (stored in status.drift)."""

    revision: str
    above: dict[str, datetime] = Field(default_factory=dict)
    """Features above their threshold, and since when."""
    detected: list[str] = Field(default_factory=list)
    """Features reported as drifting (sorted)."""
    notified: bool = True
    """Whether the webhook received the current detection (True when none is due)."""

    @classmethod
    def from_status(cls, stored: Mapping[str, Any] | None) -> DriftState | None:
        """The stored state, or None when there is none (or it is unreadable)."""
        if not stored:
            return None
        try:
            return cls.model_validate(stored)
        except ValueError:
            return None

    def to_status(self) -> dict[str, Any]:
        """JSON for status.drift."""
        out: dict[str, Any] = self.model_dump(mode="json")
        return out


@dataclass(frozen=True)
class DriftUnavailable:
    """The PSI could not be read (Prometheus or a pod failed)."""

    reason: str


PsiReading = Mapping[str, float] | DriftUnavailable
"""PSI per feature of the revision (the highest over its pods), or why there is none."""


@dataclass(frozen=True)
class DriftFinding:
    """One drifting feature, as the Event and the CloudEvent name it."""

    feature: str
    psi: float
    threshold: float
    since: datetime


@dataclass(frozen=True)
class DriftDecision:
    """The outcome of one drift decision."""

    state: DriftState
    condition: Condition
    events: tuple[Event, ...] = ()
    notify: tuple[DriftFinding, ...] = ()
    """Send the webhook these findings now (then store the state with notified=True)."""
    requeue_after: float | None = None


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _since(above: Mapping[str, datetime], features: list[str]) -> str:
    return ", ".join(f"{f} (since {_clock(above[f])})" for f in features)


def decide_drift(
    policy: DriftPolicy,
    stored: DriftState | None,
    revision: str,
    reading: PsiReading,
    now: datetime,
) -> DriftDecision:
    """DriftDetected, the state to store, the Events and the webhook's findings."""
    state = stored if stored is not None and stored.revision == revision else None
    state = state or DriftState(revision=revision)
    if isinstance(reading, DriftUnavailable):
        if state.detected:
            message = f"PSI above threshold: {_since(state.above, state.detected)}"
            condition = Condition(DRIFT_DETECTED, "True", "PSIAboveThreshold", message)
        else:
            condition = Condition(DRIFT_DETECTED, "Unknown", "MetricsUnavailable", reading.reason)
        return DriftDecision(state=state, condition=condition)

    window = timedelta(seconds=policy.for_seconds)
    above = {
        feature: state.above.get(feature, now)
        for feature, value in sorted(reading.items())
        if value > policy.limit(feature)
    }
    drifting = sorted(f for f, since in above.items() if now - since >= window)
    pending = sorted(set(above) - set(drifting))
    waits = [(above[f] + window - now).total_seconds() for f in pending]
    requeue = min(waits) if waits else None
    if drifting:
        findings = tuple(DriftFinding(f, reading[f], policy.limit(f), above[f]) for f in drifting)
        events: tuple[Event, ...] = ()
        notified = state.notified
        if set(drifting) - set(state.detected):  # newly drifting features: tell
            values = ", ".join(f"{d.feature} {d.psi:.3g} > {d.threshold:g}" for d in findings)
            events = (
                Event(
                    "Warning",
                    DRIFT_DETECTED,
                    f"revision {revision}: input PSI above threshold for {policy.for_seconds:g}s "
                    f"or more: {values}",
                ),
            )
            notified = policy.webhook is None
        notify = () if notified else findings
        if notify:
            requeue = RETRY_SECONDS if requeue is None else min(requeue, RETRY_SECONDS)
        message = f"PSI above threshold: {_since(above, drifting)}"
        return DriftDecision(
            state=DriftState(revision=revision, above=above, detected=drifting, notified=notified),
            condition=Condition(DRIFT_DETECTED, "True", "PSIAboveThreshold", message),
            events=events,
            notify=notify,
            requeue_after=requeue,
        )
    events = ()
    if state.detected:
        events = (
            Event(
                "Normal",
                "DriftResolved",
                f"revision {revision}: input PSI of {', '.join(state.detected)} back under "
                "threshold",
            ),
        )
    if pending:
        condition = Condition(
            DRIFT_DETECTED,
            "False",
            "DriftPending",
            f"PSI above threshold, not yet for {policy.for_seconds:g}s: {_since(above, pending)}",
        )
    elif reading:
        condition = Condition(
            DRIFT_DETECTED, "False", "NoDrift", f"PSI of {len(reading)} features under threshold"
        )
    else:
        condition = Condition(
            DRIFT_DETECTED,
            "False",
            "NoData",
            f"revision {revision} reports no PSI yet (it needs a reference_profile.json "
            "beside the model, and traffic)",
        )
    return DriftDecision(
        state=DriftState(revision=revision, above=above),
        condition=condition,
        events=events,
        requeue_after=requeue,
    )
