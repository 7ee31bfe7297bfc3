"""The Prometheus query client: what the real Prometheus cannot show.

The canary analysis itself (default queries, the custom query, no data, Prometheus'
own errors, an unreachable server) runs against the real Prometheus scraping real
runtimes in ``tests/runtime/test_prometheus_analysis.py``. What stays here needs a
fake of Prometheus' HTTP API on 127.0.0.1 (every such test says `fake` in its name):
the fake records every query it receives, so these tests show that a refused custom
query is never sent and that a scoped one is sent exactly as written; and it answers
what a real Prometheus never does (a non-JSON 502 from a proxy in front of it, an answer
past the size limit). The rest are pure functions (PromQL text, scoping).
"""

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

import httpx
import pytest

from kubeserve.config import OperatorConfig
from kubeserve.experiment.totals import Totals
from kubeserve.rollout.analysis import (
    AnalysisMetrics,
    MetricsUnavailable,
    Outcome,
    Quality,
    evaluate,
)
from kubeserve.rollout.decision import MetricsRequest
from kubeserve.rollout.metrics import read_canary_metrics, read_experiment_counters
from kubeserve.rollout.observation import ArmCounters, ExperimentRequest
from kubeserve.rollout.policy import Analysis, CustomCheck
from kubeserve.rollout.prometheus import (
    MAX_ANSWER_BYTES,
    PrometheusClient,
    PrometheusError,
    default_queries,
    render_custom,
)
from kubeserve.rollout.promql import QueryRefused, require_namespace, unscoped_parts

Answer = Callable[[str], tuple[int, Any]]
"""query -> (HTTP status, JSON body)."""


def vector(*values: str) -> dict[str, Any]:
    """A success body with one sample per value."""
    result = [{"metric": {}, "value": [1735732800.0, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@contextmanager
def fake_prometheus(answer: Answer) -> Iterator[tuple[str, list[str]]]:
    """Run a tiny Prometheus look-alike; yield its base URL and the queries it received."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path != "/prom/api/v1/query":
                self.send_error(404)
                return
            query = parse_qs(url.query)["query"][0]
            seen.append(query)
            status, body = answer(query)
            payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
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
        yield f"http://127.0.0.1:{server.server_address[1]}/prom/", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def canary_answer(query: str) -> tuple[int, Any]:
    """Requests 400, errors 6, p99 0.180s, custom 0.5."""
    if query.startswith("histogram_quantile"):
        return 200, vector("0.18")
    if 'status=~"5.."' in query:
        return 200, vector("6")
    if query.startswith("sum(increase("):
        return 200, vector("400")
    return 200, {"status": "success", "data": {"resultType": "scalar", "result": [0, "0.5"]}}


REQUEST = MetricsRequest(component="predictor", revision="ab12cd34", window_seconds=90.4)
ISVC = {"metadata": {"name": "iris", "namespace": "ml"}}


async def no_pods(namespace: str, labels: Any) -> list[dict[str, Any]]:
    """Pod lister that must not be used when Prometheus is configured."""
    raise AssertionError("pods listed although Prometheus is configured")


def read(url: str, request: MetricsRequest = REQUEST) -> AnalysisMetrics | MetricsUnavailable:
    result = asyncio.run(
        read_canary_metrics(ISVC, request, OperatorConfig(prometheus_url=url), list_pods=no_pods)
    )
    assert isinstance(result, AnalysisMetrics | MetricsUnavailable)
    return result


def test_default_queries_text() -> None:
    """Requests, 5xx errors and p99 of one revision over the window (rounded up to 1 s)."""
    sel = 'namespace="ml",model="iris",version="ab12cd34"'
    assert default_queries("ml", "iris", "ab12cd34", 90.4) == {
        "requests": f"sum(increase(kubeserve_requests_total{{{sel}}}[91s]))",
        "errors": f'sum(increase(kubeserve_requests_total{{{sel},status=~"5.."}}[91s]))',
        "p99": "histogram_quantile(0.99, sum by (le) "
        f"(rate(kubeserve_request_duration_seconds_bucket{{{sel}}}[91s])))",
    }


def test_fake_prometheus_quality_reads_canary_and_stable_feedback() -> None:
    """Quality checks add scored/correct queries for the canary and the stable revision."""

    def answer(query: str) -> tuple[int, Any]:
        counts = {
            ("ab12cd34", "feedback_total"): "120",
            ("ab12cd34", "feedback_correct_total"): "90",
            ("00stable", "feedback_total"): "300",
            ("00stable", "feedback_correct_total"): "291",
        }
        for (revision, family), value in counts.items():
            if f"kubeserve_{family}{{" in query and f'version="{revision}"' in query:
                return 200, vector(value)
        return canary_answer(query)

    request = MetricsRequest("predictor", "ab12cd34", 60, quality_baseline="00stable")
    with fake_prometheus(answer) as (url, seen):
        result = read(url, request)
    assert isinstance(result, AnalysisMetrics)
    assert result.quality == Quality(scored=120, correct=90, stable_scored=300, stable_correct=291)
    canary = 'namespace="ml",model="iris",version="ab12cd34"'
    stable = 'namespace="ml",model="iris",version="00stable"'
    assert f"sum(increase(kubeserve_feedback_correct_total{{{canary}}}[60s]))" in seen
    assert f"sum(increase(kubeserve_feedback_total{{{stable}}}[60s]))" in seen
    verdict = evaluate(Analysis(min_requests=0, max_quality_drop=0.1), result)
    assert verdict.reasons == ["accuracy 0.75 is 0.22 below stable 0.97 > max drop 0.1"]
    assert render_custom('x{a="{name}"}[5m]', "ns", "n", "r") == 'x{a="n"}[5m]'


def test_fake_prometheus_behind_a_proxy_answering_html_is_unavailable() -> None:
    """A proxy's non-JSON error page (a real Prometheus always answers JSON)."""
    with fake_prometheus(lambda _: (502, "<html>bad gateway</html>")) as (url, _):
        result = read(url)
        assert isinstance(result, MetricsUnavailable)
        assert result.reason.startswith("prometheus: ")
        assert "HTTP 502" in result.reason

        async def direct() -> None:
            async with httpx.AsyncClient() as client:
                with pytest.raises(PrometheusError, match=r"HTTP 502 .* is not JSON"):
                    await PrometheusClient(url, client).query("up")

        asyncio.run(direct())


SECRET = "31337.5"
"""The value of another namespace's series in the fake: it must never come back."""


def answer_with_secret(query: str) -> tuple[int, Any]:
    """Like :func:`canary_answer`, and any query naming `secret_metric` gets SECRET."""
    if "secret_metric" in query:
        return 200, vector(SECRET)
    return canary_answer(query)


@pytest.mark.parametrize(
    "query",
    [
        'sum(secret_metric{namespace="other"})',
        "sum(secret_metric)",
        'sum(secret_metric{namespace=~"{namespace}|other"})',
        'sum(secret_metric{namespace!="{namespace}"})',
        '{__name__="secret_metric"}',
        'sum(rate(ok{namespace="{namespace}"}[5m])) / sum(rate(secret_metric{job="x"}[5m]))',
        'max_over_time(secret_metric{namespace="other"}[5m:1m])',
        'sum(secret_metric{namespace="{namespace}"}) + on() group_left sum(secret_metric)',
        'sum(secret_metric{namespace="{namespace}" or namespace="other"})',
        'info(secret_metric{namespace="{namespace}"})',
        'sum(secret_metric{namespace="{namespace}"}',
    ],
    ids=[
        "other-namespace",
        "no-matcher",
        "regex",
        "negated",
        "name-only",
        "one-side-of-a-division",
        "subquery",
        "vector-matching",
        "or-matchers",
        "info",
        "not-promql",
    ],
)
def test_fake_prometheus_custom_query_reading_other_namespaces_is_refused_and_never_sent(
    query: str,
) -> None:
    """A query that could read another namespace's series is refused before anything is
    sent, and the verdict (what status and Events show) carries no value of it."""
    request = MetricsRequest("predictor", "ab12cd34", 60, custom_query=query)
    with fake_prometheus(answer_with_secret) as (url, seen):
        result = read(url, request)
    assert seen == []
    assert isinstance(result, MetricsUnavailable)
    assert "refused" in result.reason
    check = Analysis(min_requests=0, custom=CustomCheck(query, max_value=1e9))
    verdict = evaluate(check, result)
    assert verdict.outcome is Outcome.FAIL
    shown = " ".join([*verdict.reasons, verdict.summary])
    assert "refused" in shown
    assert SECRET not in shown


def test_fake_prometheus_scoped_custom_query_runs_exactly_as_written() -> None:
    """With the namespace matcher on every selector the query is sent unchanged."""
    custom = (
        'sum(rate(kubeserve_requests_total{namespace="{namespace}",model="{name}"}[5m])) '
        '/ on() group_left max_over_time(drift_score{namespace="{namespace}"}[10m:1m])'
    )
    request = MetricsRequest("predictor", "ab12cd34", 60, custom_query=custom)
    with fake_prometheus(canary_answer) as (url, seen):
        result = read(url, request)
    assert isinstance(result, AnalysisMetrics)
    assert result.custom == 0.5
    assert render_custom(custom, "ml", "iris", "ab12cd34") in seen


def test_refusal_names_each_unscoped_selector() -> None:
    parts = unscoped_parts('a{namespace="ml"} + b{namespace="x"} + rate(c[5m])', "ml")
    assert parts == [
        'b{namespace="x"} has no matcher namespace="ml"',
        'c has no matcher namespace="ml"',
    ]
    with pytest.raises(QueryRefused, match=r'add namespace="\{namespace\}"'):
        require_namespace("c", "ml")
    with pytest.raises(QueryRefused, match="not valid PromQL"):
        require_namespace("sum(", "ml")


def test_default_queries_are_scoped_to_their_namespace() -> None:
    for query in default_queries("ml", "iris", "ab12cd34", 30).values():
        assert unscoped_parts(query, "ml") == []
        assert unscoped_parts(query, "other") != []


def test_fake_prometheus_oversized_answer_is_unavailable() -> None:
    """A query matching many series is refused by size, not read into memory."""
    many = [f"{i}" for i in range(20000)]
    with fake_prometheus(lambda _: (200, vector(*many))) as (url, _):
        result = read(url)
    assert isinstance(result, MetricsUnavailable)
    assert f"the limit of {MAX_ANSWER_BYTES} bytes" in result.reason


# --------------------------------------------------------------------------- experiments

EXPERIMENT_START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ARMS = (("predictor", "aaaa1111"), ("b", "bbbb2222"))


def read_arms(url: str, request: ExperimentRequest) -> ArmCounters:
    """The experiment's arm counters an hour after it started at EXPERIMENT_START."""
    config = OperatorConfig(prometheus_url=url)
    now = EXPERIMENT_START + timedelta(hours=1)
    return asyncio.run(read_experiment_counters(ISVC, request, config, now))


def one(value: str | None) -> tuple[int, Any]:
    """A success body with one sample (None: no series)."""
    return 200, vector() if value is None else vector(value)


def test_fake_prometheus_experiment_accuracy_counters_per_arm() -> None:
    table = {("a", False): "1000", ("a", True): "874", ("b", False): "990", ("b", True): "903"}

    def answer(query: str) -> tuple[int, Any]:
        arm = "b" if 'variant="b"' in query else "a"
        return one(table[(arm, "kubeserve_feedback_correct_total" in query)])

    with fake_prometheus(answer) as (url, seen):
        counters = read_arms(url, ExperimentRequest("accuracy", ARMS, EXPERIMENT_START))
    assert counters == {
        "predictor": Totals(1000, 874, 874),
        "b": Totals(990, 903, 903),
    }
    assert all("[3600s]" in q and 'namespace="ml"' in q for q in seen)


def test_fake_prometheus_experiment_missing_wanted_series_is_reported_not_zero() -> None:
    def answer(query: str) -> tuple[int, Any]:
        return one(None if "squared" in query else "10")

    with fake_prometheus(answer) as (url, _):
        counters = read_arms(url, ExperimentRequest("reward", ARMS, EXPERIMENT_START))
    assert isinstance(counters, MetricsUnavailable)
    assert "kubeserve_feedback_reward_squared_total" in counters.reason


def test_fake_prometheus_experiment_custom_queries_are_rendered_and_confined() -> None:
    numerator = 'sum(increase(clicks_total{namespace="{namespace}",arm="{variant}"}[{range}]))'
    denominator = 'sum(increase(shown_total{namespace="{namespace}",arm="{variant}"}[{range}]))'
    with fake_prometheus(lambda q: one("5" if "clicks" in q else "50")) as (url, seen):
        counters = read_arms(
            url, ExperimentRequest("custom", ARMS, EXPERIMENT_START, (numerator, denominator))
        )
    assert counters == {"predictor": Totals(50, 5, 5), "b": Totals(50, 5, 5)}
    assert 'sum(increase(clicks_total{namespace="ml",arm="b"}[3600s]))' in seen
    escaping = ("sum(increase(clicks_total[{range}]))", denominator)
    with fake_prometheus(lambda q: one("1")) as (url, seen):
        refused = read_arms(url, ExperimentRequest("custom", ARMS, EXPERIMENT_START, escaping))
    assert isinstance(refused, MetricsUnavailable)
    assert "refused" in refused.reason
    assert seen == [], "a query leaving the namespace is never sent"
