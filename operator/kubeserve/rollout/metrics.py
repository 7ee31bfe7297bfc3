"""Reading canary metrics for the analysis: the canary pods' own /metrics, or Prometheus.

The serving runtime exports (see ``kubeserve_runtime.metrics.registry``)
``kubeserve_requests_total{model,version,protocol,status}`` and the histogram
``kubeserve_request_duration_seconds{model,version,protocol}``, where ``model`` is the
InferenceService name, ``version`` the revision and ``status`` the HTTP status code (the
HTTP equivalent for gRPC). A request is an error when its status is 5xx.

Without Prometheus the operator lists the canary's Ready pods (by their revision labels)
and GETs each pod's /metrics concurrently, with a timeout. The text is parsed with
``prometheus_client``'s parser into cumulative :class:`PodCounters` per pod; the
decision turns two such snapshots into the window's values (see :mod:`.analysis`).
Any failed scrape makes the whole reading :class:`MetricsUnavailable`, which the
analysis counts as a failed check: a canary that cannot be measured is not promoted.

With a Prometheus URL configured, :mod:`.prometheus` answers instead, over the window.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kubeserve.builders.meta import selector_labels
from kubeserve.builders.pod import METRICS_PORT
from kubeserve.rollout.analysis import MetricsUnavailable, PodCounters, Snapshot
from kubeserve.rollout.decision import MetricsRequest, Reading
from kubeserve.rollout.prometheus import PrometheusClient

REQUESTS_SAMPLE = "kubeserve_requests_total"
DURATION_BUCKET_SAMPLE = "kubeserve_request_duration_seconds_bucket"
STATUS_LABEL = "status"
METRICS_PORT_NAME = "metrics"
DEFAULT_TIMEOUT_SECONDS = 5.0


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


def parse_counters(
    text: str, *, model: str | None = None, version: str | None = None
) -> PodCounters:
    """Sum one pod's request/error counters and latency buckets (optionally one model/version)."""
    requests = errors = 0.0
    buckets: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
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


async def scrape_pods(
    targets: Sequence[PodTarget],
    client: httpx.AsyncClient,
    *,
    model: str | None = None,
    version: str | None = None,
    request_timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> Snapshot | MetricsUnavailable:
    """GET every target's /metrics concurrently (each within `request_timeout`); one failure
    makes the reading unavailable."""
    if not targets:
        return MetricsUnavailable("no Ready canary pod to scrape")

    async def fetch(target: PodTarget) -> tuple[str, PodCounters]:
        response = await client.get(target.url, timeout=request_timeout)
        response.raise_for_status()
        return target.name, parse_counters(response.text, model=model, version=version)

    results = await asyncio.gather(*(fetch(t) for t in targets), return_exceptions=True)
    snapshot: dict[str, PodCounters] = {}
    for target, result in zip(targets, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, httpx.HTTPError | ValueError):
                raise result
            detail = str(result) or type(result).__name__
            return MetricsUnavailable(f"scraping pod {target.name} ({target.url}): {detail}")
        snapshot[result[0]] = result[1]
    return snapshot


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
    own_client = client is None
    http = client if client is not None else httpx.AsyncClient()
    try:
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
    finally:
        if own_client:
            await http.aclose()
