"""Verdicts of one analysis check."""

from __future__ import annotations

from kubeserve.rollout.analysis import (
    AnalysisMetrics,
    MetricsUnavailable,
    Outcome,
    Quality,
    evaluate,
)
from kubeserve.rollout.policy import Analysis, CustomCheck

STRICT = Analysis(max_error_rate=0.01, max_latency_p99_ms=200, min_requests=20)


def test_pass_reports_the_measured_values() -> None:
    verdict = evaluate(STRICT, AnalysisMetrics(requests=100, errors=1, p99_ms=150))
    assert verdict.outcome is Outcome.PASS
    assert verdict.reasons == []
    assert verdict.summary == "100 requests, error rate 0.01, p99 150ms"


def test_too_few_requests_waits_even_when_all_failed() -> None:
    verdict = evaluate(STRICT, AnalysisMetrics(requests=19, errors=19))
    assert verdict.outcome is Outcome.WAIT
    assert verdict.reasons == ["waiting for traffic: 19 of 20 requests"]


def test_latency_without_timings_is_not_judged() -> None:
    assert evaluate(STRICT, AnalysisMetrics(requests=50, errors=0)).outcome is Outcome.PASS


def test_custom_query_over_its_max_fails() -> None:
    analysis = Analysis(min_requests=0, custom=CustomCheck("max(drift)", 0.25))
    verdict = evaluate(analysis, AnalysisMetrics(requests=0, errors=0, custom=0.4))
    assert verdict.outcome is Outcome.FAIL
    assert verdict.reasons == ["custom query 0.4 > max 0.25"]
    assert evaluate(analysis, AnalysisMetrics(0, 0, custom=0.25)).outcome is Outcome.PASS
    skipped = evaluate(analysis, AnalysisMetrics(requests=5, errors=0))
    assert skipped.outcome is Outcome.PASS
    assert "custom query skipped (needs Prometheus)" in skipped.summary


def test_unavailable_metrics_fail_the_check() -> None:
    verdict = evaluate(STRICT, MetricsUnavailable("timeout"))
    assert verdict.outcome is Outcome.FAIL
    assert verdict.reasons == ["metrics unavailable: timeout"]


QUALITY = Analysis(min_requests=0, min_accuracy=0.9, max_quality_drop=0.05, min_feedback=50)


def _reading(quality: Quality | None) -> AnalysisMetrics:
    return AnalysisMetrics(requests=100, errors=0, quality=quality)


def test_accuracy_below_its_minimum_fails_naming_the_metric() -> None:
    verdict = evaluate(QUALITY, _reading(Quality(100, 62, 200, 184)))
    assert verdict.outcome is Outcome.FAIL
    assert verdict.reasons == [
        "accuracy 0.62 < min 0.9",
        "accuracy 0.62 is 0.3 below stable 0.92 > max drop 0.05",
    ]
    assert "accuracy 0.62 (100 scored), stable accuracy 0.92" in verdict.summary


def test_accuracy_close_to_stable_passes() -> None:
    verdict = evaluate(QUALITY, _reading(Quality(100, 91, 200, 190)))
    assert verdict.outcome is Outcome.PASS
    assert verdict.reasons == []


def test_drop_alone_fails_even_above_the_minimum() -> None:
    drop_only = Analysis(min_requests=0, max_quality_drop=0.02, min_feedback=10)
    verdict = evaluate(drop_only, _reading(Quality(100, 93, 100, 99)))
    assert verdict.outcome is Outcome.FAIL
    assert verdict.reasons == ["accuracy 0.93 is 0.06 below stable 0.99 > max drop 0.02"]


def test_too_little_feedback_waits() -> None:
    verdict = evaluate(QUALITY, _reading(Quality(49, 0, 500, 500)))
    assert verdict.outcome is Outcome.WAIT
    assert verdict.reasons == ["waiting for feedback: 49 of 50 scored"]
    stable_short = evaluate(QUALITY, _reading(Quality(60, 59, 10, 10)))
    assert stable_short.outcome is Outcome.WAIT
    assert stable_short.reasons == ["waiting for stable feedback: 10 of 50 scored"]


def test_error_rate_failure_is_not_hidden_by_a_quality_wait() -> None:
    analysis = Analysis(max_error_rate=0.01, min_accuracy=0.9, min_feedback=50)
    verdict = evaluate(analysis, AnalysisMetrics(100, 20, quality=Quality(0, 0)))
    assert verdict.outcome is Outcome.FAIL
    assert verdict.reasons == ["error rate 0.2 > max 0.01"]


def test_quality_without_a_reading_fails() -> None:
    """Pod scrapes carry no quality (feedback lands on any replica): a gate fails closed."""
    verdict = evaluate(QUALITY, _reading(None))
    assert verdict.outcome is Outcome.FAIL
    assert verdict.reasons == [
        "accuracy unavailable: quality checks need the operator's Prometheus URL"
    ]


def test_no_quality_gate_ignores_quality() -> None:
    verdict = evaluate(STRICT, AnalysisMetrics(100, 0, quality=Quality(100, 0)))
    assert verdict.outcome is Outcome.PASS
    assert "accuracy" not in verdict.summary
