"""Verdicts of one analysis check."""

from __future__ import annotations

from kubeserve.rollout.analysis import AnalysisMetrics, MetricsUnavailable, Outcome, evaluate
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
