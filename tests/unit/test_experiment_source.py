"""The experiment's series and PromQL per arm, and the Prometheus reader against a fake of
Prometheus' HTTP API on 127.0.0.1 (it does not evaluate PromQL: answers depend on the
query text, and every query is recorded so the PromQL sent can be checked)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from kubeserve.config import OperatorConfig
from kubeserve.experiment.source import SERIES, arm_queries
from kubeserve.experiment.totals import Totals
from kubeserve.rollout.analysis import MetricsUnavailable
from kubeserve.rollout.metrics import read_experiment_counters
from kubeserve.rollout.observation import ArmCounters, ExperimentRequest

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


@contextmanager
def fake_prometheus(answer: Callable[[str], str | None]) -> Iterator[tuple[str, list[str]]]:
    """A Prometheus look-alike: query -> one value (None: an empty vector)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)["query"][0]
            seen.append(query)
            value = answer(query)
            result = [] if value is None else [{"metric": {}, "value": [1.0, value]}]
            body = {"status": "success", "data": {"resultType": "vector", "result": result}}
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def read(url: str | None, request: ExperimentRequest) -> ArmCounters:
    config = OperatorConfig(prometheus_url=url)
    return asyncio.run(read_experiment_counters(ISVC, request, config, T0 + timedelta(hours=1)))


def test_accuracy_counters_per_arm_from_a_fake_prometheus() -> None:
    def answer(query: str) -> str | None:
        arm = "b" if 'variant="b"' in query else "a"
        correct = "kubeserve_feedback_correct_total" in query
        return {("a", False): "1000", ("a", True): "874", ("b", False): "990", ("b", True): "903"}[
            (arm, correct)
        ]

    with fake_prometheus(answer) as (url, seen):
        counters = read(url, ExperimentRequest("accuracy", ARMS, T0))
    assert counters == {
        "predictor": Totals(1000, 874, 874),
        "b": Totals(990, 903, 903),
    }
    assert all("[3600s]" in q and 'namespace="ml"' in q for q in seen)


def test_a_missing_wanted_series_is_reported_not_zero_with_a_fake_prometheus() -> None:
    def answer(query: str) -> str | None:
        return None if "squared" in query else "10"

    with fake_prometheus(answer) as (url, _):
        counters = read(url, ExperimentRequest("reward", ARMS, T0))
    assert isinstance(counters, MetricsUnavailable)
    assert "kubeserve_feedback_reward_squared_total" in counters.reason


def test_custom_queries_are_rendered_and_confined_with_a_fake_prometheus() -> None:
    numerator = 'sum(increase(clicks_total{namespace="{namespace}",arm="{variant}"}[{range}]))'
    denominator = 'sum(increase(shown_total{namespace="{namespace}",arm="{variant}"}[{range}]))'
    with fake_prometheus(lambda q: "5" if "clicks" in q else "50") as (url, seen):
        counters = read(url, ExperimentRequest("custom", ARMS, T0, (numerator, denominator)))
    assert counters == {"predictor": Totals(50, 5, 5), "b": Totals(50, 5, 5)}
    assert 'sum(increase(clicks_total{namespace="ml",arm="b"}[3600s]))' in seen
    escaping = ("sum(increase(clicks_total[{range}]))", denominator)
    with fake_prometheus(lambda q: "1") as (url, seen):
        refused = read(url, ExperimentRequest("custom", ARMS, T0, escaping))
    assert isinstance(refused, MetricsUnavailable)
    assert "refused" in refused.reason
    assert seen == [], "a query leaving the namespace is never sent"


def test_without_prometheus_the_counters_are_unavailable() -> None:
    counters = read(None, ExperimentRequest("errorRate", ARMS, T0))
    assert isinstance(counters, MetricsUnavailable)
    assert "Prometheus" in counters.reason
