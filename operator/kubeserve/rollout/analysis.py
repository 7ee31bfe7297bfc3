"""Canary analysis: measured values over a window and the verdict on them.

Two sources give the same :class:`AnalysisMetrics` (requests, errors and p99 latency
of the canary over the current analysis window):

- Prometheus (when configured) answers directly over the window's duration;
- otherwise the operator scrapes the canary pods' own /metrics. Those counters are
  cumulative since each pod started, so a scrape is kept as a :class:`Snapshot`
  (per pod: requests, errors, histogram buckets) and the window's values are the
  per-pod differences to the snapshot taken when the window started. A counter that
  went down means the pod restarted: its current value is the whole delta, as with
  Prometheus' own `increase()`.

A verdict is one of pass, fail (with the human-readable reasons) or wait (too few
requests to judge: the window keeps growing until `minRequests` is reached).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from kubeserve.rollout.policy import Analysis


class PodCounters(BaseModel):
    """Cumulative counters of one pod at one scrape (kept in status as a baseline)."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, frozen=True)

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[str, float] = {}
    """Cumulative histogram bucket counts by upper bound (`le`, e.g. "0.25", "+Inf")."""


Snapshot = Mapping[str, PodCounters]
"""One scrape of the canary's pods: pod name -> its cumulative counters."""


@dataclass(frozen=True)
class Quality:
    """Ground-truth feedback scored over the window, for the canary and the stable."""

    scored: float
    """Scored predictions of the canary (``kubeserve_feedback_total``)."""
    correct: float
    """Of those, predicted == actual (``kubeserve_feedback_correct_total``)."""
    stable_scored: float = 0.0
    stable_correct: float = 0.0

    @property
    def accuracy(self) -> float | None:
        """The canary's accuracy (None without feedback)."""
        return self.correct / self.scored if self.scored > 0 else None

    @property
    def stable_accuracy(self) -> float | None:
        """The stable revision's accuracy (None without feedback)."""
        return self.stable_correct / self.stable_scored if self.stable_scored > 0 else None


@dataclass(frozen=True)
class AnalysisMetrics:
    """What the canary did over one analysis window."""

    requests: float
    errors: float
    p99_ms: float | None = None
    """99th percentile latency in milliseconds; None when no request was timed."""
    custom: float | None = None
    """Result of the user's custom PromQL query, when one is configured and evaluated."""
    quality: Quality | None = None
    """Feedback over the window, when a quality check asked for it (Prometheus only)."""

    @property
    def error_rate(self) -> float:
        """Errors per request (0 when there were no requests)."""
        return self.errors / self.requests if self.requests > 0 else 0.0


@dataclass(frozen=True)
class MetricsUnavailable:
    """The metrics could not be read (scrape or query failed); counts as a failed check."""

    reason: str


def _increase(previous: float | None, current: float) -> float:
    """Counter increase since `previous`, treating a decrease as a restart (like PromQL)."""
    if previous is None or current < previous:
        return current
    return current - previous


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Return the q-quantile from cumulative buckets (upper bound -> count), as PromQL does."""
    ordered = sorted(buckets.items())
    if not ordered or not math.isinf(ordered[-1][0]):
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                # The quantile lies above the last finite bound: PromQL answers that bound.
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def window_metrics(baseline: Snapshot, current: Snapshot) -> AnalysisMetrics:
    """Return the canary's requests, errors and p99 between two scrapes of its pods."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for pod, now in current.items():
        before = baseline.get(pod)
        requests += _increase(before.requests if before else None, now.requests)
        errors += _increase(before.errors if before else None, now.errors)
        restarted = before is not None and now.requests < before.requests
        for le, count in now.buckets.items():
            previous = None if before is None or restarted else before.buckets.get(le)
            bound = float(le)
            buckets[bound] = buckets.get(bound, 0.0) + _increase(previous, count)
    p99 = histogram_quantile(0.99, buckets)
    return AnalysisMetrics(
        requests=requests, errors=errors, p99_ms=None if p99 is None else p99 * 1000.0
    )


class Outcome(Enum):
    """The verdict of one analysis check."""

    PASS = "Pass"
    FAIL = "Fail"
    WAIT = "Wait"


@dataclass(frozen=True)
class Verdict:
    """The verdict of one check and the measured values behind it."""

    outcome: Outcome
    reasons: Sequence[str]
    """Why it failed or waits (one sentence per threshold), empty when it passed."""
    summary: str
    """The measured values, for conditions and events."""
    quality: Quality | None = None
    """The feedback behind a quality check (shown in status), when one ran."""


def _fmt(value: float) -> str:
    """Format a measured value compactly (at most 4 significant digits)."""
    return f"{value:.4g}"


def evaluate(analysis: Analysis, reading: AnalysisMetrics | MetricsUnavailable) -> Verdict:
    """Judge one window of canary metrics against the analysis thresholds."""
    if isinstance(reading, MetricsUnavailable):
        return Verdict(Outcome.FAIL, [f"metrics unavailable: {reading.reason}"], "no metrics")
    summary = f"{reading.requests:.0f} requests, error rate {_fmt(reading.error_rate)}"
    if reading.p99_ms is not None:
        summary += f", p99 {reading.p99_ms:.0f}ms"
    if reading.requests < analysis.min_requests:
        return Verdict(
            Outcome.WAIT,
            [f"waiting for traffic: {reading.requests:.0f} of {analysis.min_requests} requests"],
            summary,
        )
    reasons: list[str] = []
    if analysis.max_error_rate is not None and reading.error_rate > analysis.max_error_rate:
        reasons.append(
            f"error rate {_fmt(reading.error_rate)} > max {_fmt(analysis.max_error_rate)}"
        )
    limit = analysis.max_latency_p99_ms
    if limit is not None and reading.p99_ms is not None and reading.p99_ms > limit:
        reasons.append(f"p99 latency {reading.p99_ms:.0f}ms > max {limit:.0f}ms")
    if analysis.custom is not None and reading.custom is None:
        summary += ", custom query skipped (needs Prometheus)"
    if analysis.custom is not None and reading.custom is not None:
        summary += f", custom query {_fmt(reading.custom)}"
        if reading.custom > analysis.custom.max_value:
            reasons.append(
                f"custom query {_fmt(reading.custom)} > max {_fmt(analysis.custom.max_value)}"
            )
    waiting: list[str] = []
    quality = reading.quality if analysis.quality_gated else None
    if analysis.quality_gated:
        summary, failed, waiting = judge_quality(analysis, reading.quality, summary)
        reasons += failed
    if reasons:
        return Verdict(Outcome.FAIL, reasons, summary, quality)
    if waiting:
        return Verdict(Outcome.WAIT, waiting, summary, quality)
    return Verdict(Outcome.PASS, reasons, summary, quality)


def judge_quality(
    analysis: Analysis, quality: Quality | None, summary: str
) -> tuple[str, list[str], list[str]]:
    """The quality checks: (summary with the accuracies, failure reasons, wait reasons).

    No reading at all fails: quality comes only from Prometheus (feedback for a
    revision may be scored on any replica), and a gate that cannot be evaluated must not
    promote. Too little feedback waits, like too few requests.
    """
    if quality is None:
        return (
            summary + ", no quality reading",
            ["accuracy unavailable: quality checks need the operator's Prometheus URL"],
            [],
        )
    accuracy = quality.accuracy
    if accuracy is None or quality.scored < analysis.min_feedback:
        summary += f", {quality.scored:.0f} scored predictions"
        return (
            summary,
            [],
            [f"waiting for feedback: {quality.scored:.0f} of {analysis.min_feedback} scored"],
        )
    summary += f", accuracy {_fmt(accuracy)} ({quality.scored:.0f} scored)"
    failed: list[str] = []
    waiting: list[str] = []
    if analysis.min_accuracy is not None and accuracy < analysis.min_accuracy:
        failed.append(f"accuracy {_fmt(accuracy)} < min {_fmt(analysis.min_accuracy)}")
    drop = analysis.max_quality_drop
    if drop is not None:
        stable = quality.stable_accuracy
        if stable is None or quality.stable_scored < analysis.min_feedback:
            waiting.append(
                f"waiting for stable feedback: {quality.stable_scored:.0f} of "
                f"{analysis.min_feedback} scored"
            )
        else:
            summary += f", stable accuracy {_fmt(stable)}"
            if stable - accuracy > drop:
                failed.append(
                    f"accuracy {_fmt(accuracy)} is {_fmt(stable - accuracy)} below stable "
                    f"{_fmt(stable)} > max drop {_fmt(drop)}"
                )
    return summary, failed, waiting
