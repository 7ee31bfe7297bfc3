"""Reading canary metrics from the runtime's own /metrics text.

The text comes from the serving runtime's real metric families
(``kubeserve_runtime.metrics.registry.RuntimeMetrics``) on a fresh registry, rendered by
prometheus_client and, for the scrape tests, served over HTTP on 127.0.0.1 by
prometheus_client's own exporter, so a renamed metric or label breaks these tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from kubeserve.config import OperatorConfig
from kubeserve.rollout import metrics as metrics_module
from kubeserve.rollout.analysis import (
    AnalysisMetrics,
    MetricsUnavailable,
    PodCounters,
    Snapshot,
    histogram_quantile,
    window_metrics,
)
from kubeserve.rollout.decision import MetricsRequest
from kubeserve.rollout.metrics import (
    MAX_SAMPLES,
    MAX_SCRAPE_BYTES,
    PodTarget,
    analysed_lines,
    parse_counters,
    pod_targets,
    read_canary_metrics,
    scrape_pods,
)
from kubeserve_runtime.metrics.registry import RuntimeMetrics

MODEL, REVISION = "iris", "ab12cd34"


def runtime_metrics(version: str = REVISION) -> RuntimeMetrics:
    """The runtime's metric families for one model, on a registry of their own."""
    return RuntimeMetrics(CollectorRegistry(), MODEL, version)


def traffic(metrics: RuntimeMetrics, ok: int, failed: int, seconds: float) -> None:
    """Record `ok` 200s and `failed` 500s over REST, each taking `seconds`."""
    for _ in range(ok):
        metrics.observe_request("rest", 200, seconds)
    for _ in range(failed):
        metrics.observe_request("rest", 500, seconds)


def text(metrics: RuntimeMetrics) -> str:
    """The Prometheus text exposition of the registry."""
    return generate_latest(metrics.registry).decode()


def test_parse_counters_reads_the_runtime_exposition() -> None:
    metrics = runtime_metrics()
    traffic(metrics, ok=90, failed=10, seconds=0.02)
    metrics.observe_request("grpc", 503, 0.2)
    metrics.observe_request("grpc", 400, 0.2)  # a client error is not the canary's fault
    counters = parse_counters(text(metrics))
    assert counters.requests == 102
    assert counters.errors == 11
    assert counters.buckets["+Inf"] == 102
    assert counters.buckets["0.025"] == 100
    assert counters.buckets["0.01"] == 0


def test_parse_counters_keeps_only_the_asked_model_version() -> None:
    registry = CollectorRegistry()
    mine = RuntimeMetrics(registry, MODEL, REVISION)
    traffic(mine, ok=5, failed=0, seconds=0.01)
    # Another version's series in the same exposition (same families, other labels).
    other = mine._requests.labels(MODEL, "ffffffff", "rest", "500", "predictor", "weight")
    other.inc(7)
    exposition = generate_latest(registry).decode()
    assert parse_counters(exposition, model=MODEL, version=REVISION).requests == 5
    assert parse_counters(exposition, model=MODEL, version=REVISION).errors == 0
    assert parse_counters(exposition).requests == 12


def test_window_between_two_scrapes_counts_only_new_requests() -> None:
    pod = runtime_metrics()
    traffic(pod, ok=500, failed=50, seconds=0.004)  # before the window: ignored
    before = {"pod-a": parse_counters(text(pod))}
    traffic(pod, ok=97, failed=3, seconds=0.2)
    after = {"pod-a": parse_counters(text(pod))}
    window = window_metrics(before, after)
    assert (window.requests, window.errors) == (100, 3)
    assert window.error_rate == pytest.approx(0.03)
    # All 100 window requests are in the (0.1, 0.25] bucket: p99 interpolates inside it.
    assert window.p99_ms == pytest.approx(100 + 150 * 0.99)


def test_window_handles_restarted_and_new_pods() -> None:
    old = runtime_metrics()
    traffic(old, ok=1000, failed=0, seconds=0.01)
    before = {"pod-a": parse_counters(text(old)), "pod-gone": parse_counters(text(old))}
    restarted = runtime_metrics()  # pod-a restarted: its counters began again at 0
    traffic(restarted, ok=40, failed=2, seconds=0.01)
    fresh = runtime_metrics()  # pod-b started during the window
    traffic(fresh, ok=10, failed=0, seconds=0.01)
    after = {"pod-a": parse_counters(text(restarted)), "pod-b": parse_counters(text(fresh))}
    window = window_metrics(before, after)
    assert (window.requests, window.errors) == (52, 2)
    assert window.p99_ms == pytest.approx(5 + 5 * 0.99)  # all in the (5ms, 10ms] bucket


@pytest.mark.parametrize(
    ("buckets", "expected"),
    [
        ({0.1: 50, 0.2: 100, float("inf"): 100}, 0.198),
        ({0.1: 100, float("inf"): 100}, 0.099),
        ({0.1: 0, 0.5: 0, float("inf"): 10}, 0.5),  # above the last bound: that bound
        ({0.1: 0, float("inf"): 0}, None),
        ({0.1: 5}, None),  # no +Inf bucket: not a histogram
    ],
)
def test_histogram_quantile_matches_promql(
    buckets: Mapping[float, float], expected: float | None
) -> None:
    result = histogram_quantile(0.99, buckets)
    assert result == (None if expected is None else pytest.approx(expected))


def pod(
    name: str, ip: str | None, *, ready: bool = True, port: int | None = 9100
) -> dict[str, Any]:
    """A Pod object as the API server returns it (only the fields read)."""
    ports = [] if port is None else [{"name": "metrics", "containerPort": port}]
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "kserve-container", "ports": ports}]},
        "status": {
            **({"podIP": ip} if ip else {}),
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_pod_targets_keep_ready_pods_with_ips() -> None:
    terminating = pod("d", "10.0.0.4")
    terminating["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    pods = [
        pod("b", "10.0.0.2"),
        pod("a", "fd00::1", port=None),
        pod("c", "10.0.0.3", ready=False),
        pod("e", None),
        terminating,
    ]
    assert pod_targets(pods) == [
        PodTarget("a", "http://[fd00::1]:8082/metrics"),
        PodTarget("b", "http://10.0.0.2:9100/metrics"),
    ]


@contextmanager
def exporter(metrics: RuntimeMetrics) -> Iterator[str]:
    """Serve the registry on 127.0.0.1 with prometheus_client's own HTTP exporter."""
    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def silent_port() -> Iterator[str]:
    """A listening socket that never answers (to exercise the timeout)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/metrics"


def closed_port_url() -> str:
    """A loopback URL nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/metrics"


async def scrape(targets: Sequence[PodTarget], **kwargs: Any) -> Snapshot | MetricsUnavailable:
    async with httpx.AsyncClient() as client:
        return await scrape_pods(targets, client, **kwargs)


def test_scrape_pods_over_http_gives_a_snapshot_per_pod() -> None:
    one, two = runtime_metrics(), runtime_metrics()
    traffic(one, ok=30, failed=1, seconds=0.01)
    traffic(two, ok=20, failed=0, seconds=0.3)
    with exporter(one) as url_one, exporter(two) as url_two:
        targets = [PodTarget("p1", url_one), PodTarget("p2", url_two)]
        result = asyncio.run(scrape(targets, model=MODEL, version=REVISION))
    assert isinstance(result, Mapping)
    assert result["p1"] == PodCounters.model_validate(parse_counters(text(one)).model_dump())
    assert (result["p1"].requests, result["p1"].errors) == (31, 1)
    assert result["p2"].requests == 20


def test_scrape_failures_make_the_reading_unavailable() -> None:
    healthy = runtime_metrics()
    with exporter(healthy) as url:
        targets = [PodTarget("ok", url), PodTarget("down", closed_port_url())]
        result = asyncio.run(scrape(targets))
    assert isinstance(result, MetricsUnavailable)
    assert result.reason.startswith("scraping pod down (http://127.0.0.1:")

    with silent_port() as url:
        result = asyncio.run(scrape([PodTarget("hung", url)], request_timeout=0.2))
    assert isinstance(result, MetricsUnavailable)
    assert "hung" in result.reason

    assert asyncio.run(scrape([])) == MetricsUnavailable("no Ready canary pod to scrape")


def test_read_canary_metrics_lists_the_revisions_pods_and_scrapes_them() -> None:
    canary = runtime_metrics()
    traffic(canary, ok=8, failed=2, seconds=0.01)
    asked: list[tuple[str, Mapping[str, str]]] = []
    with exporter(canary) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])

        async def list_pods(namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
            asked.append((namespace, dict(labels)))
            return [pod("iris-predictor-ab12cd34-x", "127.0.0.1", port=port)]

        request = MetricsRequest(component="predictor", revision=REVISION, window_seconds=60)
        isvc = {"metadata": {"name": MODEL, "namespace": "ml"}}
        result = asyncio.run(
            read_canary_metrics(isvc, request, OperatorConfig(), list_pods=list_pods)
        )
    assert asked == [
        (
            "ml",
            {
                "serving.kubeserve.io/inferenceservice": MODEL,
                "serving.kubeserve.io/variant": "predictor",
                "serving.kubeserve.io/revision": REVISION,
            },
        )
    ]
    assert isinstance(result, Mapping)
    assert result["iris-predictor-ab12cd34-x"].errors == 2
    assert not isinstance(result, AnalysisMetrics)


# A canary pod runs whatever container its InferenceService names: these servers play a
# hostile or broken one on loopback. Each stops by itself (bounded bytes and time).

HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
ENDLESS_LIMIT = 64 << 20
"""An "endless" body stops after this many bytes, so the server always ends."""


@dataclass
class HostilePod:
    """What a hostile /metrics server saw and did."""

    url: str
    requests: list[bytes]
    sent: list[int]
    """Body bytes written per connection before the client went away (or the limit)."""


@contextmanager
def hostile_pod(respond: Callable[[socket.socket, list[int]], None]) -> Iterator[HostilePod]:
    """Serve each connection on 127.0.0.1 with `respond(conn, sent)` in a thread."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    pod = HostilePod(f"http://127.0.0.1:{server.getsockname()[1]}/metrics", [], [])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                pod.requests.append(conn.recv(65536))
                sent = [0]
                pod.sent.append(0)
                with contextlib.suppress(OSError):  # the client left: what limits are for
                    respond(conn, sent)
                pod.sent[-1] = sent[0]

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield pod
    finally:
        stop.set()
        server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        server.close()
        thread.join(timeout=30)


def endless(conn: socket.socket, sent: list[int]) -> None:
    """A valid exposition that never ends (until ENDLESS_LIMIT)."""
    conn.sendall(HEADERS + b"Connection: close\r\n\r\n")
    line = b'kubeserve_other_total{model="iris",version="ab12cd34",n="%d"} 1\n'
    chunk = b"".join(line % i for i in range(1000))
    while sent[0] < ENDLESS_LIMIT:
        conn.sendall(chunk)
        sent[0] += len(chunk)


def trickle(conn: socket.socket, sent: list[int]) -> None:
    """Headers at once, then one byte every 50 ms (for at most 1000 bytes)."""
    conn.sendall(HEADERS + b"Content-Length: 1000\r\n\r\n")
    stop = threading.Event()
    while sent[0] < 1000 and not stop.wait(0.05):
        conn.sendall(b"#")
        sent[0] += 1


def announced_huge(conn: socket.socket, sent: list[int]) -> None:
    """A Content-Length far over the limit (and then nothing)."""
    conn.sendall(HEADERS + b"Content-Length: 1073741824\r\n\r\n")


def gzipped(conn: socket.socket, sent: list[int]) -> None:
    """A compressed body although the client asked for identity."""
    body = gzip.compress(b"# nothing\n")
    conn.sendall(
        HEADERS + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )
    sent[0] = len(body)


def test_endless_metrics_body_stops_at_the_size_limit() -> None:
    """A pod that never stops sending costs the operator at most MAX_SCRAPE_BYTES."""
    with hostile_pod(endless) as bad:
        result = asyncio.run(scrape([PodTarget("endless", bad.url)]))
    assert isinstance(result, MetricsUnavailable)
    assert f"more than the limit of {MAX_SCRAPE_BYTES} bytes" in result.reason
    (sent,) = bad.sent
    assert sent < ENDLESS_LIMIT, "the operator read the whole endless body"


def test_trickling_metrics_body_hits_one_deadline_for_the_whole_scrape() -> None:
    """A byte every 50 ms never trips a per-read timeout of 0.5 s; the whole-scrape one
    ends it long before the 1000 bytes (50 s) are through."""
    with hostile_pod(trickle) as slow:
        result = asyncio.run(scrape([PodTarget("slow", slow.url)], request_timeout=0.5))
    assert isinstance(result, MetricsUnavailable)
    assert "no complete answer within 0.5s" in result.reason
    (sent,) = slow.sent
    assert sent < 1000


@pytest.mark.parametrize(
    ("respond", "fragment"),
    [
        (announced_huge, "announced 1073741824 bytes, over the limit"),
        (gzipped, "Content-Encoding 'gzip'"),
    ],
    ids=["content-length", "compressed"],
)
def test_oversized_or_compressed_metrics_are_refused_unread(
    respond: Callable[[socket.socket, list[int]], None], fragment: str
) -> None:
    with hostile_pod(respond) as bad:
        result = asyncio.run(scrape([PodTarget("bad", bad.url)]))
    assert isinstance(result, MetricsUnavailable)
    assert fragment in result.reason
    (request,) = bad.requests
    assert b"accept-encoding: identity" in request.lower()


def test_too_many_request_samples_are_refused() -> None:
    line = 'kubeserve_requests_total{model="iris",version="ab12cd34",status="%d"} 1\n'
    with pytest.raises(ValueError, match=f"at most {MAX_SAMPLES} are read"):
        parse_counters("".join(line % i for i in range(MAX_SAMPLES + 1)))


def test_other_families_are_dropped_before_parsing() -> None:
    """A large exposition of other metrics gives the same counters as the runtime's own."""
    metrics = runtime_metrics()
    traffic(metrics, ok=40, failed=2, seconds=0.01)
    noise = "".join(
        f'# HELP other_{i} noise\n# TYPE other_{i} gauge\nother_{i}{{model="iris"}} {i}\n'
        for i in range(5000)
    )
    exposition = noise + text(metrics) + noise
    assert parse_counters(exposition, model=MODEL, version=REVISION) == parse_counters(
        text(metrics), model=MODEL, version=REVISION
    )
    assert analysed_lines(exposition).count("\n") < 100


def test_scrapes_are_parsed_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser runs in the operator's parsing threads, never on the loop's thread."""
    threads: list[str] = []

    def spy(text: str) -> Iterable[Metric]:
        threads.append(threading.current_thread().name)
        return text_string_to_metric_families(text)

    monkeypatch.setattr(metrics_module, "text_string_to_metric_families", spy)
    canary = runtime_metrics()
    traffic(canary, ok=3, failed=0, seconds=0.01)

    async def run() -> tuple[Snapshot | MetricsUnavailable, str]:
        return await scrape([PodTarget("p", url)]), threading.current_thread().name

    with exporter(canary) as url:
        result, loop_thread = asyncio.run(run())
    assert isinstance(result, Mapping)
    assert result["p"].requests == 3
    assert threads
    assert all(name.startswith("kubeserve-metrics-parse") for name in threads)
    assert loop_thread not in threads
