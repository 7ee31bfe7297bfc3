"""The runtime's metric families.

Label values for the served model are fixed at start, so the hot path touches
pre-bound children (a dict lookup keyed by protocol and status), never
``labels(...)`` with its lock and tuple building. The in-flight gauge is not
incremented per request: each protocol has an ``InFlight`` counter, a plain integer the
transports bump on the event loop thread (uvicorn and grpc.aio share it), and the gauge
reads it only when scraped (``set_function``). ``status`` is the HTTP status code
for REST and the HTTP equivalent of the gRPC code for gRPC, so one query covers both.

The request series (count, latency histogram, and the counter of squared latencies an
experiment's variance needs) also carry ``variant`` (the component, fixed at start) and
``routed`` (``header`` when the route's header match sent the request, marked by the
:data:`~kubeserve_runtime.contract.ROUTED_HEADER` request header, else ``weight``), so an
A/B experiment can compare arms with equal revisions and leave out requests that were not
randomized. Both are bounded: one variant per process, two routed values.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kubeserve_runtime.contract import (
    DEFAULT_COMPONENT,
    METRIC_LABEL_ROUTED,
    METRIC_LABEL_VARIANT,
    ROUTED_BY_HEADER,
    ROUTED_BY_WEIGHT,
)

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class InFlight:
    """Requests of one protocol being handled now; read by the gauge at scrape time."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def value(self) -> float:
        """The current count (the gauge's sample function)."""
        return float(self.count)


class RuntimeMetrics:
    """Counters, histograms and gauges for one served model."""

    def __init__(
        self,
        registry: CollectorRegistry,
        model: str,
        version: str,
        variant: str = DEFAULT_COMPONENT,
    ) -> None:
        self.registry = registry
        self._model = model
        self._version = version
        self._variant = variant
        base = ["model", "version"]
        arm = [METRIC_LABEL_VARIANT, METRIC_LABEL_ROUTED]
        self._requests = Counter(
            "kubeserve_requests",
            "Inference and metadata requests by protocol and status code.",
            [*base, "protocol", "status", *arm],
            registry=registry,
        )
        self._total = Histogram(
            "kubeserve_request_duration_seconds",
            "Time from request received to response ready.",
            [*base, "protocol", *arm],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._squares = Counter(
            "kubeserve_request_duration_seconds_squared",
            "Sum of squared request durations (seconds^2): with the histogram's _sum and "
            "_count, the latency's variance per arm.",
            [*base, "protocol", *arm],
            registry=registry,
        )
        self.queue = Histogram(
            "kubeserve_queue_duration_seconds",
            "Time a request waited before its model call started.",
            base,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ).labels(model, version)
        self.inference = Histogram(
            "kubeserve_inference_duration_seconds",
            "Duration of one model call (a whole batch when batching).",
            base,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ).labels(model, version)
        self.batch_size = Histogram(
            "kubeserve_batch_size",
            "Rows per model call.",
            base,
            buckets=BATCH_BUCKETS,
            registry=registry,
        ).labels(model, version)
        self._inflight = Gauge(
            "kubeserve_inflight_requests",
            "Requests being handled right now.",
            [*base, "protocol"],
            registry=registry,
        )
        self._load = Gauge(
            "kubeserve_model_load_seconds",
            "Seconds it took to load the model.",
            [*base, "format"],
            registry=registry,
        )
        self._auth_refused = Counter(
            "kubeserve_auth_refused",
            "Requests refused by authentication (401) or authorization (403), by reason.",
            [*base, "protocol", "reason", "status"],
            registry=registry,
        )
        self._request_children: dict[tuple[str, int, bool], Any] = {}
        self._total_children: dict[tuple[str, bool], tuple[Any, Any]] = {}
        self._inflight_counters: dict[str, InFlight] = {}

    def observe_request(
        self, protocol: str, status: int, seconds: float, by_header: bool = False
    ) -> None:
        """Count one finished request and its total latency (``by_header``: the route's
        header match sent it, see :data:`~kubeserve_runtime.contract.ROUTED_HEADER`)."""
        routed = ROUTED_BY_HEADER if by_header else ROUTED_BY_WEIGHT
        key = (protocol, status, by_header)
        child = self._request_children.get(key)
        if child is None:
            child = self._requests.labels(
                self._model, self._version, protocol, str(status), self._variant, routed
            )
            self._request_children[key] = child
        child.inc()
        timing = self._total_children.get((protocol, by_header))
        if timing is None:
            labels = (self._model, self._version, protocol, self._variant, routed)
            timing = (self._total.labels(*labels), self._squares.labels(*labels))
            self._total_children[(protocol, by_header)] = timing
        timing[0].observe(seconds)
        timing[1].inc(seconds * seconds)

    def auth_refused(self, protocol: str, reason: str, status: int) -> None:
        """Count one request that auth refused (reasons are a small fixed set)."""
        self._auth_refused.labels(self._model, self._version, protocol, reason, str(status)).inc()

    def inflight(self, protocol: str) -> InFlight:
        """Return the in-flight counter of a protocol (one per protocol, exported)."""
        counter = self._inflight_counters.get(protocol)
        if counter is None:
            counter = InFlight()
            child = self._inflight.labels(self._model, self._version, protocol)
            child.set_function(counter.value)
            self._inflight_counters[protocol] = counter
        return counter

    def observe_batch(self, rows: int, seconds: float) -> None:
        """Record one model call: its rows and duration (called from worker threads)."""
        self.batch_size.observe(rows)
        self.inference.observe(seconds)

    def model_loaded(self, fmt: str, seconds: float) -> None:
        """Record how long loading the model took."""
        self._load.labels(self._model, self._version, fmt).set(seconds)
