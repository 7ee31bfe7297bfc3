"""Reading canary metrics for the analysis: the canary pods' own /metrics, or Prometheus.

The serving runtime exports (see ``kubeserve_runtime.metrics.registry``)
``kubeserve_requests_total{model,version,protocol,status}`` and the histogram
``kubeserve_request_duration_seconds{model,version,protocol}``, where ``model`` is the
InferenceService name, ``version`` the revision and ``status`` the HTTP status code (the
HTTP equivalent for gRPC). A request is an error when its status is 5xx.

Without Prometheus the operator lists the canary's Ready pods (by their revision labels)
and GETs each pod's /metrics, at most :data:`SCRAPE_CONCURRENCY` at a time. A pod runs
whatever container its InferenceService names, so a scrape is untrusted input to the one
cluster-wide operator and is bounded (see :mod:`.responses`): at most
:data:`MAX_SCRAPE_BYTES`, one deadline for the whole response, no compression. Only the
two sample families the analysis reads are kept (a line filter on the metric name), at
most :data:`MAX_SAMPLES` lines, and ``prometheus_client``'s parser turns them into
cumulative :class:`PodCounters` in a worker thread of its own, so parsing never runs on
the event loop (which renews the leader lease and serves every other InferenceService)
nor takes the threads the API calls use. That parser costs about 1 s per MiB here,
which is why the filter and the line cap come first.

The decision turns two such snapshots into the window's values (see :mod:`.analysis`).
Any failed scrape makes the whole reading :class:`MetricsUnavailable`, which the
analysis counts as a failed check: a canary that cannot be measured is not promoted.

With a Prometheus URL configured, :mod:`.prometheus` answers instead, over the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kubeserve.builders.meta import selector_labels
from kubeserve.rollout.analysis import MetricsUnavailable, PodCounters, Snapshot
from kubeserve.rollout.observation import ArmCounters, ExperimentRequest, MetricsRequest, Reading
from kubeserve.rollout.prometheus import PrometheusClient
from kubeserve.rollout.responses import read_bounded
from kubeserve_runtime.contract import METRICS_PORT

REQUESTS_SAMPLE = "kubeserve_requests_total"
DURATION_BUCKET_SAMPLE = "kubeserve_request_duration_seconds_bucket"
STATUS_LABEL = "status"
METRICS_PORT_NAME = "metrics"
DEFAULT_TIMEOUT_SECONDS = 5.0
"""Deadline of one whole scrape or Prometheus query (connect, headers and body)."""
MAX_SCRAPE_BYTES = 1 << 20
"""Largest /metrics body read from a pod. The runtime's own exposition for one model is a
few kilobytes (tens with per-feature drift gauges); a custom container that sends more
makes the reading unavailable instead of the operator's memory grow."""
MAX_SAMPLES = 5000
"""Most request/latency sample lines parsed per pod; the runtime writes about a hundred."""
SCRAPE_CONCURRENCY = 8
"""Pods scraped at once per reading (a large canary is read in waves)."""
_SAMPLE_PREFIXES = tuple(
    name + sep for name in (REQUESTS_SAMPLE, DURATION_BUCKET_SAMPLE) for sep in "{ "
)
_PARSER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kubeserve-metrics-parse")
"""Parsing threads of their own: a slow parse never holds a thread the API calls need."""


class MetricsSettings(Protocol):
    """The operator setting this module reads (:class:`kubeserve.config.OperatorConfig`)."""

    @property
    def prometheus_url(self) -> str | None:
        """Prometheus base URL, or None to scrape the pods."""


PodLister = Callable[[str, Mapping[str, str]], Awaitable[Sequence[Mapping[str, Any]]]]
"""(namespace, label selector) -> Pod objects as Kubernetes JSON (camelCase)."""


def is_server_error(status: str | None) -> bool:
    """Whether a `status` label value is a 5xx code."""
    return status is not None and status.isdigit() and 500 <= int(status) <= 599


def le_key(bound: float) -> str:
    """Canonical text of a bucket's upper bound (so stored baselines compare equal)."""
    return "+Inf" if math.isinf(bound) else repr(bound)


def analysed_lines(text: str) -> str:
    """Keep only the sample lines of the two families the analysis reads.

    Raises ValueError when there are more than :data:`MAX_SAMPLES` of them.
    """
    kept = [line for line in text.splitlines() if line.lstrip().startswith(_SAMPLE_PREFIXES)]
    if len(kept) > MAX_SAMPLES:
        raise ValueError(
            f"{len(kept)} {REQUESTS_SAMPLE}/{DURATION_BUCKET_SAMPLE} samples; "
            f"at most {MAX_SAMPLES} are read"
        )
    return "\n".join(kept) + "\n"


def parse_counters(
    text: str, *, model: str | None = None, version: str | None = None
) -> PodCounters:
    """Sum one pod's request/error counters and latency buckets (optionally one model/version).

    Other families are dropped before parsing (see :func:`analysed_lines`); the sample
    names stay the same without their TYPE lines, so the result does too.
    """
    requests = errors = 0.0
    buckets: dict[str, float] = {}
    for family in text_string_to_metric_families(analysed_lines(text)):
        for sample in family.samples:
            labels = sample.labels
            if model is not None and labels.get("model") != model:
                continue
            if version is not None and labels.get("version") != version:
                continue
            if sample.name == REQUESTS_SAMPLE:
                requests += sample.value
                if is_server_error(labels.get(STATUS_LABEL)):
                    errors += sample.value
            elif sample.name == DURATION_BUCKET_SAMPLE:
                key = le_key(float(labels["le"]))
                buckets[key] = buckets.get(key, 0.0) + sample.value
    return PodCounters(requests=requests, errors=errors, buckets=buckets)


@dataclass(frozen=True)
class PodTarget:
    """One pod to scrape."""

    name: str
    url: str


def pod_targets(pods: Iterable[Mapping[str, Any]]) -> list[PodTarget]:
    """Metrics URLs of the Ready, running, not terminating pods (Kubernetes JSON)."""
    targets: list[PodTarget] = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        ip = status.get("podIP")
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or ()
        )
        if not ip or not ready or meta.get("deletionTimestamp"):
            continue
        port = METRICS_PORT
        for container in (pod.get("spec") or {}).get("containers") or ():
            for p in container.get("ports") or ():
                if p.get("name") == METRICS_PORT_NAME:
                    port = int(p["containerPort"])
        host = f"[{ip}]" if ":" in ip else ip
        targets.append(PodTarget(str(meta.get("name")), f"http://{host}:{port}/metrics"))
    return sorted(targets, key=lambda t: t.name)


async def scrape_pod(
    target: PodTarget,
    client: httpx.AsyncClient,
    *,
    model: str | None = None,
    version: str | None = None,
    request_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    max_bytes: int = MAX_SCRAPE_BYTES,
) -> PodCounters:
    """Read one pod's /metrics within the limits and parse it off the event loop.

    Raises :class:`httpx.HTTPError`, :class:`TimeoutError` or :class:`ValueError`
    (:class:`.responses.ResponseTooLarge` included) when the pod cannot be read.
    """
    response, body = await read_bounded(
        client, target.url, max_bytes=max_bytes, deadline=request_timeout
    )
    response.raise_for_status()
    text = body.decode("utf-8", errors="replace")
    parse = functools.partial(parse_counters, text, model=model, version=version)
    return await asyncio.get_running_loop().run_in_executor(_PARSER, parse)


async def scrape_pods(
    targets: Sequence[PodTarget],
    client: httpx.AsyncClient,
    *,
    model: str | None = None,
    version: str | None = None,
    request_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    max_bytes: int = MAX_SCRAPE_BYTES,
) -> Snapshot | MetricsUnavailable:
    """Scrape every target (:data:`SCRAPE_CONCURRENCY` at a time, each within
    `request_timeout` and `max_bytes`); one failure makes the reading unavailable."""
    if not targets:
        return MetricsUnavailable("no Ready canary pod to scrape")
    slots = asyncio.Semaphore(SCRAPE_CONCURRENCY)

    async def fetch(target: PodTarget) -> PodCounters:
        async with slots:
            return await scrape_pod(
                target,
                client,
                model=model,
                version=version,
                request_timeout=request_timeout,
                max_bytes=max_bytes,
            )

    results = await asyncio.gather(*(fetch(t) for t in targets), return_exceptions=True)
    snapshot: dict[str, PodCounters] = {}
    for target, result in zip(targets, results, strict=True):
        if isinstance(result, BaseException):
            return MetricsUnavailable(scrape_failure(target, result, request_timeout))
        snapshot[target.name] = result
    return snapshot


def scrape_failure(target: PodTarget, error: BaseException, request_timeout: float) -> str:
    """Why scraping `target` failed; re-raises an error that is not a failed scrape."""
    if isinstance(error, TimeoutError):
        detail = f"no complete answer within {request_timeout:g}s"
    elif isinstance(error, httpx.HTTPError | ValueError):
        detail = str(error) or type(error).__name__
    else:
        raise error
    return f"scraping pod {target.name} ({target.url}): {detail}"


@contextlib.asynccontextmanager
async def http_client(client: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    """`client`, or a client of its own that is closed on exit."""
    if client is not None:
        yield client
        return
    async with httpx.AsyncClient() as own:
        yield own


async def read_canary_metrics(
    isvc: Mapping[str, Any],
    request: MetricsRequest,
    settings: MetricsSettings,
    *,
    list_pods: PodLister,
    client: httpx.AsyncClient | None = None,
    request_timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> Reading:
    """Measure the canary named by `request`: Prometheus when configured, else its pods."""
    meta = isvc["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    async with http_client(client) as http:
        if settings.prometheus_url:
            prometheus = PrometheusClient(settings.prometheus_url, http, timeout=request_timeout)
            return await prometheus.canary_metrics(namespace, name, request)
        pods = await list_pods(
            namespace, selector_labels(name, request.component, request.revision)
        )
        return await scrape_pods(
            pod_targets(pods),
            http,
            model=name,
            version=request.revision,
            request_timeout=request_timeout,
        )


async def read_experiment_counters(
    isvc: Mapping[str, Any],
    request: ExperimentRequest,
    settings: MetricsSettings,
    now: datetime,
    *,
    client: httpx.AsyncClient | None = None,
    request_timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> ArmCounters:
    """The experiment arms' counters since it started; experiments need Prometheus (a pod
    scrape cannot see pods that went away, nor count from the experiment's start)."""
    if not settings.prometheus_url:
        return MetricsUnavailable(
            "experiments read their counters from Prometheus: set the operator's Prometheus URL"
        )
    meta = isvc["metadata"]
    async with http_client(client) as http:
        prometheus = PrometheusClient(settings.prometheus_url, http, timeout=request_timeout)
        return await prometheus.experiment_counters(
            str(meta["namespace"]), str(meta["name"]), request, now
        )
