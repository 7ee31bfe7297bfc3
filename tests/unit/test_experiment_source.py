"""The experiment's series and PromQL per arm (the reader against Prometheus' HTTP API is
tested in test_rollout_prometheus.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import promql_parser
import pytest

from kubeserve.config import OperatorConfig
from kubeserve.experiment.source import SERIES, arm_queries
from kubeserve.rollout.analysis import MetricsUnavailable
from kubeserve.rollout.metrics import read_experiment_counters
from kubeserve.rollout.observation import ArmCounters, ExperimentRequest
from kubeserve.rollout.promql import require_namespace

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ISVC = {"metadata": {"name": "iris", "namespace": "ml"}}
ARMS = (("predictor", "aaaa1111"), ("b", "bbbb2222"))


def test_every_built_in_metric_has_its_series() -> None:
    assert set(SERIES) == {"errorRate", "latencyMean", "accuracy", "reward", "conversion"}
    q = arm_queries("errorRate", "ml", "iris", "b", 90.2)
    selector = 'namespace="ml",model="iris",variant="b",routed!="header"'
    assert q.count == f"sum(increase(kubeserve_requests_total{{{selector}}}[91s]))"
    assert q.total == f'sum(increase(kubeserve_requests_total{{{selector},status=~"5.."}}[91s]))'
    assert q.squares is None
    reward = arm_queries("reward", "ml", "iris", "predictor", 60)
    assert reward.squares is not None
    assert reward.squares.startswith("sum(increase(kubeserve_feedback_reward_squared_total{")


def read(request: ExperimentRequest) -> ArmCounters:
    config = OperatorConfig(prometheus_url=None)
    return asyncio.run(read_experiment_counters(ISVC, request, config, T0 + timedelta(hours=1)))


def test_without_prometheus_the_counters_are_unavailable() -> None:
    counters = read(ExperimentRequest("errorRate", ARMS, T0))
    assert isinstance(counters, MetricsUnavailable)
    assert "Prometheus" in counters.reason


@pytest.mark.parametrize("metric", sorted(SERIES))
def test_every_query_is_valid_promql_confined_to_the_namespace(metric: str) -> None:
    """Each query parses (the real PromQL parser) and selects only the namespace's series."""
    q = arm_queries(metric, "ml", "iris", "b", 3600)
    for query in (q.count, q.total, q.squares):
        if query is not None:
            require_namespace(query, "ml")
            parsed = promql_parser.parse(query)
            assert parsed.prettify().startswith("sum(")
