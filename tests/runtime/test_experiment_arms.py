"""A/B experiment counters from real runtime processes through the real Prometheus.

Arms A (component ``predictor``) and B (component ``b``) run the same custom-handler model
at the same revision, as an A/A test would: only the runtime's ``variant`` label tells
their series apart. B also answers requests carrying the route's header-match mark
(:data:`~kubeserve_runtime.contract.ROUTED_HEADER`, what the Gateway API HTTPRoute sets on
header-matched rules), which the experiment must leave out. Rewards are sent for every
prediction's feedback token.

First the runtimes' own expositions are checked exactly against what the test sent and
computed (request counts per arm and route, squared latencies against the histogram,
squared rewards and conversions). Then the pinned Prometheus scrapes both, and the
operator's reading (:meth:`PrometheusClient.experiment_counters`, the experiment's
per-arm PromQL) feeds the statistics (:func:`compare`).

Limits of the comparison: the reading is ``increase()`` over the experiment's age, which
Prometheus extrapolates, and a series' first scraped sample is its baseline. So each
series is created by a warm-up, scraped, and the measured traffic follows; the reading is
at least the measured counts and at most measured plus warm-up, times the extrapolation
to the range's ends (less than 1.1 scrape intervals each, over a sampled interval the test
makes at least SAMPLES - 1 intervals by waiting for SAMPLES scrapes).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc import service_pb2, service_pb2_grpc

from kubeserve.devcluster.prometheus import PrometheusServer, Target, pod_target
from kubeserve.experiment.sequential import Design, compare
from kubeserve.rollout.observation import ArmCounters, ExperimentRequest
from kubeserve.rollout.prometheus import PrometheusClient
from kubeserve_runtime import contract
from kubeserve_runtime.testing import RuntimeProcess, wait_until

pytestmark = pytest.mark.slow

NAMESPACE, NAME, REVISION = "ml", "shop", "r1"
A, B = contract.DEFAULT_COMPONENT, "b"
WEIGHTED = {A: 30, B: 24}
"""Measured randomized requests per arm."""
HEADER_ROUTED = 40
"""Measured header-matched requests to B: more than its randomized ones, so counting
them would show."""
REWARDS = {A: [0.0, 1.0, 0.0, 0.5, 0.0, 0.0], B: [1.0, 2.0, 1.0, 0.0, 1.0, 1.5]}
"""Measured rewards per arm (exact in binary floating point, so sums compare exactly)."""
WARM_UP_REWARD = 1.0
POSTS = 1
"""Feedback POSTs per arm in the warm-up and in the measured traffic: the request series
count every request an arm serves, feedback included."""
SAMPLES = 21
"""Scrapes of every measured series before the reading (bounds the extrapolation)."""
EXTRAPOLATION = 1.0 + 2 * 1.1 / (SAMPLES - 1)
"""Prometheus extends the sampled interval by less than 1.1 average scrape intervals at
either end of the range."""

HANDLER = """
class Handler:
    def predict(self, feed):
        return feed["x"] * 2
"""

BODY = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]}
MARK = {contract.ROUTED_HEADER: contract.ROUTED_BY_HEADER}


@pytest.fixture(scope="module")
def arms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RuntimeProcess]]:
    """Arms A and B: same model, same revision, one feedback key."""
    folder = tmp_path_factory.mktemp("arms")
    (folder / "handler.py").write_text(HANDLER)
    key = folder / "key"
    key.write_text(secrets.token_urlsafe(32) + "\n")

    def arm(component: str) -> RuntimeProcess:
        return RuntimeProcess(
            folder,
            NAME,
            "--model-version",
            REVISION,
            "--component",
            component,
            "--feedback-key-file",
            str(key),
        )

    with arm(A) as a, arm(B) as b:
        yield {A: a, B: b}


def predict(client: httpx.Client, runtime: RuntimeProcess, headers: dict[str, str]) -> str:
    """One inference request; return its feedback token."""
    answer = client.post(f"{runtime.url}/v2/models/{NAME}/infer", json=BODY, headers=headers)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["parameters"][contract.FEEDBACK_PARAMETER]
    return token


def reward(client: httpx.Client, runtime: RuntimeProcess, items: list[tuple[str, float]]) -> None:
    """Send rewards for tokens (to the arm that made them, any replica would do)."""
    body = [{"token": token, "reward": value} for token, value in items]
    answer = client.post(f"{runtime.url}/v2/models/{NAME}/feedback", json=body)
    assert answer.status_code == 200, answer.text


def samples(runtime: RuntimeProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, keyed by (name, labels)."""
    text = httpx.get(runtime.metrics_url).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(runtime: RuntimeProcess, name: str, **labels: str) -> float:
    """The sum of one sample name's values over series carrying `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples(runtime).items() if n == name and wanted <= got)


def target(arm: str, runtime: RuntimeProcess) -> Target:
    """The runtime as a Kubernetes scrape sees an arm's pod."""
    return pod_target(runtime.metrics_port, NAMESPACE, NAME, arm, REVISION)


def scraped(server: PrometheusServer, promql: str) -> float:
    """The value of an instant query summed to one number (0 without data)."""
    result = server.query(f"sum({promql})")
    return float(result[0]["value"][1]) if result else 0.0


@pytest.fixture(scope="module")
def traffic(
    arms: dict[str, RuntimeProcess], start_prometheus: Any
) -> tuple[PrometheusServer, datetime]:
    """Prometheus scraping both arms after warm-up and measured traffic and feedback;
    returns it and the experiment's start (before any request)."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    server: PrometheusServer = start_prometheus([target(a, r) for a, r in arms.items()])
    with httpx.Client(timeout=30) as client:
        for runtime in arms.values():
            reward(client, runtime, [(predict(client, runtime, {}), WARM_UP_REWARD)])
        predict(client, arms[B], MARK)
        wait_until(
            lambda: (
                all(
                    scraped(server, f'kubeserve_feedback_conversions_total{{variant="{a}"}}') == 1
                    for a in arms
                )
                and scraped(server, 'kubeserve_requests_total{routed="header"}') == 1
            ),
            "warm-up scraped",
        )
        for arm, runtime in arms.items():
            tokens = [predict(client, runtime, {}) for _ in range(WEIGHTED[arm])]
            reward(client, runtime, list(zip(tokens, REWARDS[arm], strict=False)))
        for _ in range(HEADER_ROUTED):
            predict(client, arms[B], MARK)
    count = f'kubeserve_requests_total{{variant="{B}",routed="header"}}[1h]'
    wait_until(
        lambda: (
            scraped(server, f'kubeserve_requests_total{{variant="{B}",routed="header"}}')
            == 1 + HEADER_ROUTED
            and scraped(server, f"count_over_time({count})") >= SAMPLES
        ),
        "measured traffic scraped often enough",
        timeout=120,
    )
    return server, since


def test_rewards_squares_and_conversions(
    arms: dict[str, RuntimeProcess], traffic: tuple[PrometheusServer, datetime]
) -> None:
    """The reward families equal the rewards the test sent, per arm."""
    for arm, runtime in arms.items():
        rewards = [WARM_UP_REWARD, *REWARDS[arm]]
        labels = {"variant": arm, "version": REVISION}
        assert value(runtime, "kubeserve_feedback_reward_count", **labels) == len(rewards)
        assert value(runtime, "kubeserve_feedback_reward_sum", **labels) == sum(rewards)
        assert value(runtime, "kubeserve_feedback_reward_squared_total", **labels) == sum(
            r * r for r in rewards
        )
        assert value(runtime, "kubeserve_feedback_conversions_total", **labels) == sum(
            r > 0 for r in rewards
        )


def reading(server: PrometheusServer, metric: str, since: datetime) -> ArmCounters:
    """The operator's per-arm counters of one metric."""

    async def run() -> ArmCounters:
        async with httpx.AsyncClient() as client:
            prometheus = PrometheusClient(server.url, client)
            request = ExperimentRequest(metric, ((A, REVISION), (B, REVISION)), since)
            return await prometheus.experiment_counters(NAMESPACE, NAME, request, datetime.now(UTC))

    return asyncio.run(run())


def within(got: float, measured: float, warm_up: float) -> bool:
    """Whether an increase() reading counts the measured amount (see the module's limits)."""
    return measured <= got <= (measured + warm_up) * EXTRAPOLATION


def test_reading_counts_each_arm_without_header_traffic(
    traffic: tuple[PrometheusServer, datetime],
) -> None:
    """errorRate and latencyMean: each arm's randomized requests, B's header-matched ones
    left out; the statistics compare two arms with samples."""
    server, since = traffic
    for metric in ("errorRate", "latencyMean"):
        counters = reading(server, metric, since)
        assert isinstance(counters, dict), counters
        for arm in (A, B):
            got = counters[arm].count
            assert within(got, WEIGHTED[arm] + POSTS, 1 + POSTS), (metric, arm, counters)
        assert counters[B].count < WEIGHTED[B] + HEADER_ROUTED
        if metric == "errorRate":  # no request failed
            assert counters[A].total == counters[B].total == 0
    latency = reading(server, "latencyMean", since)
    assert isinstance(latency, dict)
    for totals in latency.values():
        assert totals.total > 0
        assert totals.total * totals.total / totals.count <= totals.squares * (1 + 1e-9)
    design = Design(min_samples=min(WEIGHTED.values()), higher_is_better=False)
    look = compare(design, latency[A], latency[B])
    assert look.a.samples == latency[A].count
    assert look.b.samples == latency[B].count


def test_reading_rewards_and_conversions_per_arm(
    traffic: tuple[PrometheusServer, datetime],
) -> None:
    """reward and conversion read the sent rewards of each arm; B's are higher."""
    server, since = traffic
    rewards = reading(server, "reward", since)
    conversions = reading(server, "conversion", since)
    assert isinstance(rewards, dict)
    assert isinstance(conversions, dict)
    for arm in (A, B):
        sent = REWARDS[arm]
        assert within(rewards[arm].count, len(sent), 1)
        assert within(rewards[arm].total, sum(sent), WARM_UP_REWARD)
        assert within(rewards[arm].squares, sum(r * r for r in sent), WARM_UP_REWARD**2)
        assert within(conversions[arm].total, sum(r > 0 for r in sent), 1)
    design = Design(min_samples=len(REWARDS[A]))
    look = compare(design, rewards[A], rewards[B])
    assert look.difference > 0  # B's rewards are higher
    proportion = compare(Design(min_samples=1, binary=True), conversions[A], conversions[B])
    assert proportion.b.estimate > proportion.a.estimate


def test_runtime_labels_requests_by_arm_and_route(
    arms: dict[str, RuntimeProcess], traffic: tuple[PrometheusServer, datetime]
) -> None:
    """Runtime expositions: counts per (variant, routed) equal what was sent (runs last:
    it adds requests); squared latencies agree with the histogram."""
    sent = {
        (A, contract.ROUTED_BY_WEIGHT): 1 + WEIGHTED[A] + 2 * POSTS,
        (B, contract.ROUTED_BY_WEIGHT): 1 + WEIGHTED[B] + 2 * POSTS,
        (B, contract.ROUTED_BY_HEADER): 1 + HEADER_ROUTED,
    }
    for (arm, routed), expected in sent.items():
        assert value(arms[arm], "kubeserve_requests_total", routed=routed) == expected
    assert value(arms[A], "kubeserve_requests_total", routed=contract.ROUTED_BY_HEADER) == 0
    with httpx.Client(timeout=30) as client:
        before = {a: value(r, "kubeserve_requests_total") for a, r in arms.items()}
        for _ in range(3):
            predict(client, arms[A], {})
        for _ in range(2):
            predict(client, arms[B], MARK)
        # Other REST routes and gRPC read the mark too.
        metadata = client.get(f"{arms[B].url}/v2/models/{NAME}", headers=MARK)
        assert metadata.status_code == 200, metadata.text
    with grpc.insecure_channel(arms[B].grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        ask = service_pb2.ModelMetadataRequest(name=NAME)
        assert stub.ModelMetadata(ask, metadata=tuple(MARK.items())).name == NAME
        assert stub.ModelMetadata(ask).name == NAME
    requests = "kubeserve_requests_total"
    assert value(arms[A], requests) - before[A] == 3
    assert value(arms[B], requests) - before[B] == 5
    grpc_header = value(arms[B], requests, protocol="grpc", routed=contract.ROUTED_BY_HEADER)
    grpc_weight = value(arms[B], requests, protocol="grpc", routed=contract.ROUTED_BY_WEIGHT)
    assert (grpc_header, grpc_weight) == (1, 1)
    for arm, runtime in arms.items():
        got = {labels for (n, labels), _ in samples(runtime).items() if n == requests}
        variants = {dict(labels)[contract.METRIC_LABEL_VARIANT] for labels in got}
        routes = {dict(labels)[contract.METRIC_LABEL_ROUTED] for labels in got}
        assert variants == {arm}
        assert routes <= set(contract.ROUTED_VALUES)
        count = value(runtime, "kubeserve_request_duration_seconds_count")
        total = value(runtime, "kubeserve_request_duration_seconds_sum")
        squares = value(runtime, "kubeserve_request_duration_seconds_squared_total")
        assert count == value(runtime, requests)
        # Cauchy-Schwarz from below; every duration is at most the smallest bucket bound
        # holding all of them, from above.
        assert total * total / count <= squares * (1 + 1e-9)
        bounds = {
            dict(labels)["le"]
            for (n, labels), _ in samples(runtime).items()
            if n == "kubeserve_request_duration_seconds_bucket"
        }
        bucket = "kubeserve_request_duration_seconds_bucket"
        bound = min(float(le) for le in bounds if value(runtime, bucket, le=le) == count)
        assert squares <= total * bound
    assert value(arms[B], requests, routed=contract.ROUTED_BY_HEADER) == 5 + HEADER_ROUTED
