"""Canary analysis through the real Prometheus scraping real runtime processes.

Two canaries of the InferenceService ``ml/iris`` run as ``kubeserve-runtime serve``
subprocesses on loopback, both a custom-handler model: a healthy revision and a broken
one (its handler raises on negative inputs, a 500, and sleeps on large ones). The pinned
Prometheus scrapes both every second with the target labels a Kubernetes scrape gives a
pod (``namespace``, ``serving_kubeserve_io_*``). After real traffic, the operator's own
reading (:func:`read_canary_metrics` with a Prometheus URL) and verdict
(:func:`evaluate`) run against it: the healthy canary passes, the broken one fails on
error rate and p99 (a failed check is what rolls a canary back), and the custom-query
path returns real values, real "no data" and real Prometheus errors.

The chart's PrometheusRule is loaded too (rendered by helm): every recording rule and
every alert expression returns data from these runtimes, except the one that reads
kube-state-metrics, which does not run here. For the feedback rules both canaries share a
feedback key and get ground truth for their answers: the broken canary as a classifier
(mostly wrong: its quality alert goes pending), the healthy one as a regressor (MAE,
RMSE). The broken canary's payload logger has a one-record queue and a receiver that is
not there, so it drops events. The operator's condition gauge is served from a real
:class:`OperatorMetrics` registry over HTTP (the conditions of a rolled-back and of a
progressing InferenceService, as the operator writes them; that the reconcile sets them is
tested in the cluster tests), so the rollout alerts have data. Every panel query of the
chart's Grafana dashboard runs against the same Prometheus and returns numbers.

Counting: each series is created by a warm-up request and scraped before the measured
traffic, so ``increase()`` over the window counts at least every measured request
(Prometheus' extrapolation only adds to ``last - first``); the verdicts use thresholds far
from the measured values.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import start_http_server

from kubeserve import dashboard
from kubeserve.config import OperatorConfig
from kubeserve.controller.metrics import OperatorMetrics
from kubeserve.devcluster import versions
from kubeserve.devcluster.prometheus import PrometheusServer, Target, pod_target
from kubeserve.rollout.analysis import AnalysisMetrics, MetricsUnavailable, Outcome, evaluate
from kubeserve.rollout.metrics import read_canary_metrics
from kubeserve.rollout.observation import MetricsRequest
from kubeserve.rollout.policy import Analysis, CustomCheck
from kubeserve.rollout.prometheus import PrometheusClient, PrometheusError
from kubeserve_runtime import contract
from kubeserve_runtime.metrics.drift import PROFILE_FILE
from kubeserve_runtime.testing import RuntimeProcess, free_port, wait_until

pytestmark = pytest.mark.slow

NAMESPACE, NAME = "ml", "iris"
HEALTHY, BROKEN, IDLE = "healthy1", "broken01", "neverran"
"""Revisions: two canaries that serve traffic, and one that never ran."""

OK_REQUESTS = 40
FAILING_REQUESTS = 20
SLOW_REQUESTS = 4
SLOW_MS = 1500.0
"""The broken canary answers OK_REQUESTS fast requests, FAILING_REQUESTS 500s and
SLOW_REQUESTS that take SLOW_MS (its p99 falls in the (1s, 2.5s] bucket, far above the
healthy canary's, even on a loaded machine)."""

WINDOW_SECONDS = 300.0
"""The analysis window: longer than the module runs, so it covers every request."""

CHECK = Analysis(max_error_rate=0.01, max_latency_p99_ms=1000, min_requests=OK_REQUESTS)

HANDLER = """
import time


class Handler:
    def predict(self, feed):
        x = feed["x"]
        first = float(x.ravel()[0])
        if first < 0:
            raise RuntimeError("canary bug: negative input")
        time.sleep(first / 1000)  # milliseconds
        return x * 2
"""

ERROR_RATIO = (
    '(sum(rate(kubeserve_requests_total{namespace="{namespace}",model="{name}",'
    'version="{revision}",status=~"5.."}[5m])) or vector(0)) / '
    'sum(rate(kubeserve_requests_total{namespace="{namespace}",model="{name}",'
    'version="{revision}"}[5m]))'
)
"""A custom check: the canary's error ratio (0 when it has no error series at all)."""


PROFILE = {"input": "x", "features": [{"name": "x", "edges": [0.5], "expected": [0.5, 0.5]}]}
"""Training saw half its x below 0.5. The healthy canary serves as many x = 0 as x = 1
(PSI about 0); every x the broken one answers is >= 1 (failed requests are not counted),
so it drifts (PSI 4.6 > 0.25)."""


def body(value: float) -> dict[str, Any]:
    """A v2 inference request with one FP32 value."""
    return {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [value]}]}


RIGHT, WRONG = 10, 20
"""Measured truths for the broken canary's answers: RIGHT of them agree (class "2", what
it answers for x = 1), WRONG say class "0": accuracy 1/3, far below the rules' 0.8 and
with more scored predictions than their minimum of 20."""

REGRESSION_TRUTHS = 20
"""Measured truths for the healthy canary's answers (a regressor: 0.5 off each)."""


@pytest.fixture(scope="module")
def canaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RuntimeProcess]]:
    """The healthy and the broken canary, serving the same handler model."""
    model_dir = tmp_path_factory.mktemp("canary-model")
    (model_dir / "handler.py").write_text(HANDLER)
    (model_dir / PROFILE_FILE).write_text(json.dumps(PROFILE))
    key = model_dir.parent / "feedback-key"
    key.write_text(secrets.token_urlsafe(32))
    env = {"KUBESERVE_INLINE_INFERENCE_MAX_MS": "0"}  # slow calls never block the loop
    args = (model_dir, NAME, "--model-version")
    feedback = ("--feedback-key-file", str(key), "--feedback-task")
    dead_receiver = {"http": {"url": f"http://127.0.0.1:{free_port()}/"}}
    logger = {"sinks": [dead_receiver], "queue_size": 1, "flush_timeout_seconds": 0}
    with (
        RuntimeProcess(*args, HEALTHY, *feedback, "regression", env=env, grpc=False) as healthy,
        RuntimeProcess(
            *args,
            BROKEN,
            *feedback,
            "classification",
            "--payload-logger",
            json.dumps(logger),
            env=env,
            grpc=False,
        ) as broken,
    ):
        yield {HEALTHY: healthy, BROKEN: broken}


@pytest.fixture(scope="module")
def operator_metrics() -> Iterator[str]:
    """``host:port`` of a real operator metrics registry over HTTP, holding the conditions
    the operator writes for a rolled-back (``iris``) and a progressing (``wine``)
    InferenceService."""
    metrics = OperatorMetrics()
    metrics.record_conditions(
        NAMESPACE,
        NAME,
        [
            {"type": "Ready", "status": "True"},
            {"type": "RolloutProgressing", "status": "False", "reason": "RolledBack"},
            {"type": "RolledBack", "status": "True", "reason": "AnalysisFailed"},
        ],
    )
    metrics.record_conditions(
        NAMESPACE,
        "wine",
        [
            {"type": "Ready", "status": "True"},
            {"type": "RolloutProgressing", "status": "True", "reason": "CanaryProgressing"},
            {"type": "RolledBack", "status": "False", "reason": "NotRolledBack"},
        ],
    )
    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def target(revision: str, runtime: RuntimeProcess) -> Target:
    """The runtime as a Kubernetes scrape sees a canary pod."""
    return pod_target(runtime.metrics_port, NAMESPACE, NAME, "predictor", revision)


def scraped_total(prometheus: PrometheusServer, revision: str, status: str) -> float:
    """The last scraped value of one revision's request counter for one status."""
    series = prometheus.query(
        f'sum(kubeserve_requests_total{{model="{NAME}",version="{revision}",status="{status}"}})'
    )
    return float(series[0]["value"][1]) if series else 0.0


def send(client: httpx.Client, runtime: RuntimeProcess, value: float, times: int) -> list[str]:
    """POST ``times`` inference requests with ``value``; check each got the expected status;
    return the feedback tokens of the answers."""
    expected = 500 if value < 0 else 200
    tokens = []
    for _ in range(times):
        answer = client.post(f"{runtime.url}/v2/models/{NAME}/infer", json=body(value))
        assert answer.status_code == expected, answer.text
        if expected == 200:
            tokens.append(answer.headers[contract.FEEDBACK_HEADER])
    return tokens


def score(client: httpx.Client, runtime: RuntimeProcess, items: list[dict[str, Any]]) -> None:
    """Send ground truth for answered predictions."""
    answer = client.post(f"{runtime.url}/v2/models/{NAME}/feedback", json=items)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": len(items)}


def scraped_feedback(prometheus: PrometheusServer, family: str) -> float:
    """The last scraped sum of one feedback counter over both canaries."""
    series = prometheus.query(f'sum(kubeserve_{family}{{model="{NAME}"}})')
    return float(series[0]["value"][1]) if series else 0.0


def send_feedback(
    client: httpx.Client,
    server: PrometheusServer,
    canaries: dict[str, RuntimeProcess],
    tokens: dict[str, list[str]],
) -> None:
    """Ground truth for the canaries' answers (each scored by the canary that answered):
    one warm-up item per series, scraped before the measured items so ``increase()``
    counts them all, then the measured ones."""
    healthy, broken = canaries[HEALTHY], canaries[BROKEN]
    regression, classification = iter(tokens[HEALTHY]), iter(tokens[BROKEN])

    def truths(source: Iterator[str], truth: float, times: int) -> list[dict[str, Any]]:
        return [{"token": next(source), "truth": truth} for _ in range(times)]

    score(client, healthy, truths(regression, 2.5, 1))
    score(client, broken, truths(classification, 2, 1) + truths(classification, 0, 1))
    wait_until(
        lambda: (
            scraped_feedback(server, "feedback_total") == 2
            and scraped_feedback(server, "feedback_absolute_error_count") == 1
        ),
        "warm-up feedback scraped",
    )
    score(client, healthy, truths(regression, 2.5, REGRESSION_TRUTHS))
    score(
        client,
        broken,
        truths(classification, 2, RIGHT) + truths(classification, 0, WRONG),
    )
    wait_until(
        lambda: (
            scraped_feedback(server, "feedback_total") == 2 + RIGHT + WRONG
            and scraped_feedback(server, "feedback_correct_total") == 1 + RIGHT
            and scraped_feedback(server, "feedback_absolute_error_count") == 1 + REGRESSION_TRUTHS
        ),
        "measured feedback scraped",
    )


@pytest.fixture(scope="module")
def prometheus(
    canaries: dict[str, RuntimeProcess],
    operator_metrics: str,
    start_prometheus: Any,
    chart_rules_file: Path,
) -> PrometheusServer:
    """Prometheus scraping both canaries after they served warm-up and measured traffic,
    evaluating the chart's rules."""
    targets = [target(r, p) for r, p in canaries.items()]
    targets.append(Target(operator_metrics))  # no namespace label: the gauge's own stays
    server: PrometheusServer = start_prometheus(targets, rule_files=[chart_rules_file])
    healthy, broken = canaries[HEALTHY], canaries[BROKEN]
    with httpx.Client(timeout=30) as client:
        tokens = {HEALTHY: send(client, healthy, 1.0, 1), BROKEN: send(client, broken, 1.0, 1)}
        send(client, broken, -1.0, 1)
        wait_until(
            lambda: (
                scraped_total(server, HEALTHY, "200") == 1
                and scraped_total(server, BROKEN, "200") == 1
                and scraped_total(server, BROKEN, "500") == 1
            ),
            "warm-up requests scraped",
        )
        tokens[HEALTHY] += send(client, healthy, 0.0, OK_REQUESTS // 2)
        tokens[HEALTHY] += send(client, healthy, 1.0, OK_REQUESTS - OK_REQUESTS // 2)
        tokens[BROKEN] += send(client, broken, 1.0, OK_REQUESTS)
        send(client, broken, -1.0, FAILING_REQUESTS)
        send(client, broken, SLOW_MS, SLOW_REQUESTS)
        wait_until(
            lambda: (
                scraped_total(server, HEALTHY, "200") == 1 + OK_REQUESTS
                and scraped_total(server, BROKEN, "200") == 1 + OK_REQUESTS + SLOW_REQUESTS
                and scraped_total(server, BROKEN, "500") == 1 + FAILING_REQUESTS
            ),
            "measured traffic scraped",
        )
        send_feedback(client, server, canaries, tokens)
    return server


async def no_pods(namespace: str, labels: Any) -> list[dict[str, Any]]:
    """Pod lister that must not be used when Prometheus is configured."""
    raise AssertionError("pods listed although Prometheus is configured")


def read(
    url: str, revision: str, custom_query: str | None = None
) -> AnalysisMetrics | MetricsUnavailable:
    """The operator's reading of one canary over the window."""
    request = MetricsRequest("predictor", revision, WINDOW_SECONDS, custom_query=custom_query)
    isvc = {"metadata": {"name": NAME, "namespace": NAMESPACE}}
    result = asyncio.run(
        read_canary_metrics(isvc, request, OperatorConfig(prometheus_url=url), list_pods=no_pods)
    )
    assert isinstance(result, AnalysisMetrics | MetricsUnavailable)
    return result


def test_healthy_canary_passes(prometheus: PrometheusServer) -> None:
    reading = read(prometheus.url, HEALTHY)
    assert isinstance(reading, AnalysisMetrics), reading
    assert reading.requests >= OK_REQUESTS
    assert reading.errors == 0
    assert reading.p99_ms is not None
    verdict = evaluate(CHECK, reading)
    assert verdict.outcome is Outcome.PASS, verdict
    assert verdict.reasons == []


def test_broken_canary_fails_on_errors_and_latency(prometheus: PrometheusServer) -> None:
    """A failed check is what makes the rollout roll the canary back."""
    reading = read(prometheus.url, BROKEN)
    assert isinstance(reading, AnalysisMetrics), reading
    assert reading.requests >= OK_REQUESTS + FAILING_REQUESTS + SLOW_REQUESTS
    assert reading.errors >= FAILING_REQUESTS
    assert 0.2 < reading.error_rate < 0.5
    assert reading.p99_ms is not None
    assert 1000 < reading.p99_ms <= 2500
    verdict = evaluate(CHECK, reading)
    assert verdict.outcome is Outcome.FAIL
    assert [reason.split(" >")[0].rsplit(" ", 1)[0] for reason in verdict.reasons] == [
        "error rate",
        "p99 latency",
    ]


def test_canary_without_traffic_waits(prometheus: PrometheusServer) -> None:
    """No series at all reads as zero requests, so the check waits for traffic."""
    reading = read(prometheus.url, IDLE)
    assert reading == AnalysisMetrics(requests=0, errors=0, p99_ms=None)
    assert evaluate(CHECK, reading).outcome is Outcome.WAIT


@pytest.mark.parametrize(("revision", "outcome"), [(HEALTHY, Outcome.PASS), (BROKEN, Outcome.FAIL)])
def test_custom_query_is_evaluated_by_prometheus(
    prometheus: PrometheusServer, revision: str, outcome: Outcome
) -> None:
    """The placeholders name the canary; Prometheus' value decides against queryMax."""
    reading = read(prometheus.url, revision, ERROR_RATIO)
    assert isinstance(reading, AnalysisMetrics), reading
    assert reading.custom is not None
    assert (reading.custom == 0) is (revision == HEALTHY)
    check = Analysis(min_requests=1, custom=CustomCheck(ERROR_RATIO, max_value=0.1))
    verdict = evaluate(check, reading)
    assert verdict.outcome is outcome, verdict
    assert f"custom query {reading.custom:.4g}" in verdict.summary


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (
            'sum(kubeserve_requests_total{namespace="{namespace}",model="nosuchmodel"})',
            "returned no data",
        ),
        (
            'kubeserve_requests_total{namespace="{namespace}",model="{name}"}',
            "series; it must return one value",
        ),
        ('kubeserve_requests_total{namespace="{namespace}"}[1m]', "returned a matrix"),
        (
            'sum(kubeserve_requests_total{namespace="{namespace}"}) '
            '+ on(model) kubeserve_requests_total{namespace="{namespace}"}',
            "many-to-many matching not allowed",
        ),
    ],
    ids=["no-data", "many-series", "matrix", "execution-error"],
)
def test_custom_query_prometheus_cannot_answer_is_unavailable(
    prometheus: PrometheusServer, query: str, reason: str
) -> None:
    """Whatever real Prometheus answers instead of one value makes the check fail."""
    reading = read(prometheus.url, BROKEN, query)
    assert isinstance(reading, MetricsUnavailable), reading
    assert reason in reading.reason
    check = Analysis(min_requests=0, custom=CustomCheck(query, max_value=1e9))
    assert evaluate(check, reading).outcome is Outcome.FAIL


def test_query_refused_by_prometheus_raises(prometheus: PrometheusServer) -> None:
    async def run() -> None:
        async with httpx.AsyncClient() as client:
            with pytest.raises(PrometheusError, match="bad_data"):
                await PrometheusClient(prometheus.url, client).query("sum(")

    asyncio.run(run())


def test_unreachable_prometheus_is_unavailable() -> None:
    reading = read(f"http://127.0.0.1:{free_port()}/", HEALTHY)
    assert isinstance(reading, MetricsUnavailable)
    assert reading.reason.startswith("prometheus: ")


def test_scrape_targets_carry_the_pod_labels(prometheus: PrometheusServer) -> None:
    """Series carry the labels the default queries and the chart's rules select on."""
    series = prometheus.query(f'kubeserve_requests_total{{version="{BROKEN}",status="500"}}')
    assert len(series) == 1
    labels = series[0]["metric"]
    assert labels["namespace"] == NAMESPACE
    assert labels["model"] == NAME
    assert labels["serving_kubeserve_io_variant"] == "predictor"


def test_pinned_prometheus_reports_its_release(prometheus: PrometheusServer) -> None:
    """The build stamps the release the pinned module version numbers."""
    info = prometheus.http.get("/api/v1/status/buildinfo").json()["data"]
    assert info["version"] == versions.PROMETHEUS_RELEASE
    assert info["revision"] == versions.PROMETHEUS


NEEDS_KUBE_STATE_METRICS = {"KubeserveNoReadyReplicas"}
"""Alerts on kube-state-metrics' Deployment series, which no runtime exports."""

RECORDED_FOR = {
    "kubeserve_feedback_mae": {HEALTHY},
    "kubeserve_feedback_rmse": {HEALTHY},
    "kubeserve_feedback_": {BROKEN},
    "kubeserve_payload_events_dropped": {BROKEN},
}
"""Revisions a recording rule records, by a part of its name (first match), when not both:
the healthy canary is scored as a regressor, the broken one as a classifier and only the
broken one logs payloads."""


def recorded_revisions(record: str) -> set[str]:
    """The revisions ``record`` records from these canaries."""
    return next(
        (revisions for part, revisions in RECORDED_FOR.items() if part in record),
        {HEALTHY, BROKEN},
    )


def test_every_chart_rule_returns_data(
    prometheus: PrometheusServer, chart_prometheus_rule: dict[str, Any]
) -> None:
    """Each recording rule records the canaries it applies to; each alert expression has
    data, and every alert is pending or firing for what earns it."""
    rules = [item for group in chart_prometheus_rule["spec"]["groups"] for item in group["rules"]]

    def revisions(promql: str) -> set[str]:
        return {series["metric"]["version"] for series in prometheus.query(promql)}

    def recorded(record: str) -> bool:
        return revisions(f'{record}{{namespace="{NAMESPACE}"}}') == recorded_revisions(record)

    for rule in rules:
        if "record" in rule:
            wait_until(partial(recorded, rule["record"]), f"{rule['record']} recorded")
        elif rule["alert"] not in NEEDS_KUBE_STATE_METRICS:
            assert prometheus.query(rule["expr"]), f"{rule['alert']}: {rule['expr']} has no data"
    assert {rule.get("alert") for rule in rules} >= NEEDS_KUBE_STATE_METRICS

    def active(alert: str, label: str = "version") -> set[str]:
        query = f'ALERTS{{alertname="{alert}",alertstate=~"pending|firing"}}'
        return {series["metric"][label] for series in prometheus.query(query)}

    def only_broken(alert: str) -> bool:
        return active(alert) == {BROKEN}

    for alert in (
        "KubeserveErrorRatioHigh",
        "KubeserveLatencyP99High",
        "KubeserveInputDrift",
        "KubeserveModelQualityDrop",
        "KubeservePayloadEventsDropped",
    ):
        wait_until(partial(only_broken, alert), f"{alert} pending")
    wait_until(lambda: active("KubeserveRolledBack", "name") == {NAME}, "rolled back firing")
    wait_until(lambda: active("KubeserveRolloutStuck", "name") == {"wine"}, "stuck pending")


def test_feedback_rules_measure_what_was_sent(prometheus: PrometheusServer) -> None:
    """Accuracy, per-class precision/recall/F1 and MAE/RMSE from the real scrape agree with
    what the truths sent make of the answers."""

    def value(promql: str) -> float:
        (sample,) = prometheus.query(promql)
        return float(sample["value"][1])

    selector = f'{{namespace="{NAMESPACE}",model="{NAME}",version="{BROKEN}"'
    accuracy = f"isvc_revision:kubeserve_feedback_accuracy:ratio1h{selector}}}"
    wait_until(lambda: bool(prometheus.query(accuracy)), "accuracy recorded")
    # increase() extrapolates each series by its own first value's distance from zero, so
    # the ratio is near, not at, the measured 1/3 (with the warm-up items: 11/32)
    assert value(accuracy) == pytest.approx(RIGHT / (RIGHT + WRONG), abs=0.05)

    def per_class(ratio: str, klass: str) -> str:
        return f'isvc_revision_class:kubeserve_feedback_{ratio}:ratio1h{selector},class="{klass}"}}'

    # every answer was class 2: its precision is the accuracy; all true 2s were right
    assert value(per_class("precision", "2")) == pytest.approx(value(accuracy))
    assert value(per_class("recall", "2")) == pytest.approx(1)
    assert value(per_class("recall", "0")) == pytest.approx(0)
    assert value(per_class("f1", "0")) == pytest.approx(0)
    healthy = f'{{namespace="{NAMESPACE}",model="{NAME}",version="{HEALTHY}"}}'
    # the healthy canary answers 0 or 2; every truth is 2.5, so each error is 2.5 or 0.5
    mae = value(f"isvc_revision:kubeserve_feedback_mae:1h{healthy}")
    assert 0.5 <= mae <= 2.5
    assert value(f"isvc_revision:kubeserve_feedback_rmse:1h{healthy}") >= mae


def test_every_dashboard_query_returns_data(prometheus: PrometheusServer) -> None:
    """Each panel query of the chart's Grafana dashboard, with the variables set to this
    InferenceService, returns at least one series with a number (not NaN), as an instant
    and as a range query."""
    board = json.loads((Path(__file__).resolve().parents[2] / dashboard.FILE).read_text())
    queries = dashboard.queries(board)
    assert len(queries) >= len([p for p in board["panels"] if p["type"] != "row"])
    end = time.time()
    for title, expr in queries:
        promql = dashboard.expand(expr, NAMESPACE, NAME, rate_interval="5m")
        values = [float(series["value"][1]) for series in prometheus.query(promql)]
        assert [v for v in values if not math.isnan(v)], f"{title}: {promql} has no data"
        # as Grafana asks: a range query over the last minute (what bench/dashboard.py draws)
        matrix = prometheus.query_range(promql, end - 60, end, step=5)
        assert [v for series in matrix for _, v in series["values"] if v != "NaN"], title
