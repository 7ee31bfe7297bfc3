"""Reading the stable revision's per-feature PSI: from Prometheus, or from its pods.

Limits: the runtime exports ``kubeserve_input_drift_psi{model,version,feature}`` (see
``kubeserve_runtime.metrics.drift``), each pod over its own recent rows; the reading is
the highest PSI of each feature over the revision's pods (one replica that sees drifted
traffic is enough). With Prometheus: ``max by (feature) (kubeserve_input_drift_psi{
namespace,model,version})`` at the time of the pass. Without: the revision's Ready pods'
/metrics, within the same bounds as the canary scrape (:mod:`kubeserve.rollout.metrics`:
size, deadline, sample lines, pods at once). Any failure makes the whole reading
:class:`~.drift.DriftUnavailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kubeserve.builders.meta import selector_labels
from kubeserve.monitoring.drift import DriftUnavailable, PsiReading
from kubeserve.plan import DEFAULT_COMPONENT
from kubeserve.rollout.metrics import (
    DEFAULT_TIMEOUT_SECONDS,
    MAX_SAMPLES,
    MAX_SCRAPE_BYTES,
    SCRAPE_CONCURRENCY,
    MetricsSettings,
    PodLister,
    PodTarget,
    http_client,
    pod_targets,
    scrape_failure,
)
from kubeserve.rollout.prometheus import PrometheusClient, PrometheusError, selector
from kubeserve.rollout.responses import read_bounded

PSI_SAMPLE = "kubeserve_input_drift_psi"
FEATURE_LABEL = "feature"


def psi_query(namespace: str, name: str, revision: str) -> str:
    """The PromQL of a revision's PSI per feature (highest over its pods)."""
    return f"max by ({FEATURE_LABEL}) ({PSI_SAMPLE}{{{selector(namespace, name, revision)}}})"


def parse_psi(text: str, *, model: str, version: str) -> dict[str, float]:
    """PSI per feature in one /metrics text (only `model`/`version`'s samples).

    Raises ValueError when there are more than MAX_SAMPLES PSI lines.
    """
    kept = [line for line in text.splitlines() if line.startswith(PSI_SAMPLE + "{")]
    if len(kept) > MAX_SAMPLES:
        raise ValueError(f"{len(kept)} {PSI_SAMPLE} samples; at most {MAX_SAMPLES} are read")
    out: dict[str, float] = {}
    for family in text_string_to_metric_families("\n".join(kept) + "\n"):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") == model and labels.get("version") == version:
                out[labels[FEATURE_LABEL]] = sample.value
    return out


def highest(readings: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each feature's highest PSI over several pods."""
    out: dict[str, float] = {}
    for reading in readings:
        for feature, value in reading.items():
            out[feature] = max(value, out.get(feature, value))
    return out


async def scrape_psi(
    targets: Sequence[PodTarget],
    client: httpx.AsyncClient,
    *,
    model: str,
    version: str,
    request_timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> PsiReading:
    """Every target's PSI, the highest per feature; one failure makes it unavailable."""
    if not targets:
        return DriftUnavailable(f"no Ready pod of revision {version} to scrape")

    slots = asyncio.Semaphore(SCRAPE_CONCURRENCY)

    async def fetch(target: PodTarget) -> dict[str, float]:
        async with slots:
            response, body = await read_bounded(
                client, target.url, max_bytes=MAX_SCRAPE_BYTES, deadline=request_timeout
            )
        response.raise_for_status()
        return parse_psi(body.decode("utf-8", errors="replace"), model=model, version=version)

    results = await asyncio.gather(*(fetch(t) for t in targets), return_exceptions=True)
    readings: list[dict[str, float]] = []
    for target, result in zip(targets, results, strict=True):
        if isinstance(result, BaseException):
            return DriftUnavailable(scrape_failure(target, result, request_timeout))
        readings.append(result)
    return highest(readings)


async def read_psi(
    isvc: Mapping[str, Any],
    revision: str,
    settings: MetricsSettings,
    *,
    list_pods: PodLister,
    client: httpx.AsyncClient | None = None,
    request_timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> PsiReading:
    """The PSI per feature of the main predictor's `revision`: Prometheus when
    configured, else its pods."""
    meta = isvc["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    async with http_client(client) as http:
        if settings.prometheus_url:
            prometheus = PrometheusClient(settings.prometheus_url, http, timeout=request_timeout)
            try:
                return await prometheus.vector(psi_query(namespace, name, revision), FEATURE_LABEL)
            except (httpx.HTTPError, PrometheusError) as exc:
                return DriftUnavailable(f"prometheus: {exc}")
        pods = await list_pods(namespace, selector_labels(name, DEFAULT_COMPONENT, revision))
        return await scrape_psi(
            pod_targets(pods), http, model=name, version=revision, request_timeout=request_timeout
        )
