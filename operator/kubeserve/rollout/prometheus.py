"""Canary analysis through Prometheus' HTTP API (`GET /api/v1/query`).

Used when the operator has a Prometheus URL. The default queries select the canary's
series by the labels the runtime itself puts on them (`model` = InferenceService name,
`version` = revision) plus `namespace`, which every Kubernetes scrape configuration
(PodMonitor, ServiceMonitor, the annotation-based `kubernetes-pods` job) attaches. They
run over the whole current analysis window (`MetricsRequest.window_seconds`):

- requests: ``sum(increase(kubeserve_requests_total{sel}[W]))``
- errors:   the same with ``status=~"5.."``
- p99:      ``histogram_quantile(0.99, sum by (le) (rate(..._bucket{sel}[W])))``
- quality (``minAccuracy``/``maxQualityDrop``): ``sum(increase(kubeserve_feedback_total
  {sel}[W]))`` and the same of ``kubeserve_feedback_correct_total``, for the canary and
  for the stable revision (its own ``version``)

Experiments (:meth:`PrometheusClient.experiment_counters`) read each arm's count, sum and
sum of squares since the experiment started with the queries of
:mod:`kubeserve.experiment.source`; custom numerator/denominator queries are confined to
the namespace the same way as the analysis' custom query.

The optional custom query (`analysis.query`) has its `{namespace}`, `{name}` and
`{revision}` placeholders replaced (literally; PromQL's own braces are left alone), must
confine every selector to the InferenceService's namespace (:mod:`.promql`; otherwise it
is refused and nothing is queried) and must return one value; the check fails when that
value is greater than `queryMax`, or when it returns nothing. Any error of Prometheus or
of the connection makes the reading :class:`MetricsUnavailable` (a failed check).
Answers are read with a deadline and at most :data:`MAX_ANSWER_BYTES` (one value needs a
few hundred; a query matching thousands of series is refused by size, not parsed).
"""

from __future__ import annotations

import asyncio
import json
import math
from datetime import datetime
from typing import Any

import httpx

from kubeserve.experiment.source import ArmQueries, arm_queries, custom_queries, window
from kubeserve.experiment.totals import Totals
from kubeserve.rollout.analysis import AnalysisMetrics, MetricsUnavailable, Quality
from kubeserve.rollout.observation import ArmCounters, ExperimentRequest, MetricsRequest
from kubeserve.rollout.promql import QueryRefused, require_namespace
from kubeserve.rollout.responses import read_bounded

REQUESTS = "kubeserve_requests_total"
DURATION_BUCKET = "kubeserve_request_duration_seconds_bucket"
FEEDBACK = "kubeserve_feedback_total"
FEEDBACK_CORRECT = "kubeserve_feedback_correct_total"
MAX_ANSWER_BYTES = 256 * 1024


class PrometheusError(Exception):
    """Prometheus refused a query or answered with something unusable."""


def _quote(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def selector(namespace: str, name: str, revision: str) -> str:
    """Label matchers of one revision's series (without braces)."""
    return f"namespace={_quote(namespace)},model={_quote(name)},version={_quote(revision)}"


def default_queries(
    namespace: str, name: str, revision: str, window_seconds: float
) -> dict[str, str]:
    """The requests, errors and p99 queries for one revision over the window."""
    sel = selector(namespace, name, revision)
    window = f"{max(1, math.ceil(window_seconds))}s"
    return {
        "requests": f"sum(increase({REQUESTS}{{{sel}}}[{window}]))",
        "errors": f'sum(increase({REQUESTS}{{{sel},status=~"5.."}}[{window}]))',
        "p99": (
            f"histogram_quantile(0.99, sum by (le) (rate({DURATION_BUCKET}{{{sel}}}[{window}])))"
        ),
    }


def quality_queries(
    namespace: str, name: str, canary: str, stable: str, window_seconds: float
) -> dict[str, str]:
    """Scored and correct predictions of the canary and the stable over the window.

    Summed over every pod: feedback may be scored on any replica, and the ``version``
    label is the revision that made the prediction (from the token)."""
    window = f"{max(1, math.ceil(window_seconds))}s"
    out = {}
    for role, revision in (("", canary), ("stable_", stable)):
        sel = selector(namespace, name, revision)
        out[f"{role}scored"] = f"sum(increase({FEEDBACK}{{{sel}}}[{window}]))"
        out[f"{role}correct"] = f"sum(increase({FEEDBACK_CORRECT}{{{sel}}}[{window}]))"
    return out


def render_custom(query: str, namespace: str, name: str, revision: str) -> str:
    """Replace the documented placeholders of a custom query."""
    for key, value in (("namespace", namespace), ("name", name), ("revision", revision)):
        query = query.replace("{" + key + "}", value)
    return query


def _number(promql: str, value: Any) -> float | None:
    """The number of a ``[time, "text"]`` sample; None when it is not finite."""
    try:
        number = float(value[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise PrometheusError(f"query {promql!r} returned a malformed value {value!r}") from exc
    return number if math.isfinite(number) else None


class PrometheusClient:
    """A small client of the instant-query endpoint."""

    def __init__(self, base_url: str, client: httpx.AsyncClient, *, timeout: float = 5.0) -> None:
        self.url = base_url.rstrip("/") + "/api/v1/query"
        self.client = client
        self.timeout = timeout

    async def query(self, promql: str) -> float | None:
        """Run an instant query; return its single value, or None when it has no (finite) value."""
        kind, result = await self._answer(promql)
        value: Any
        if kind == "scalar":
            value = result
        elif kind == "vector":
            if not result:
                return None
            if len(result) > 1:
                raise PrometheusError(
                    f"query {promql!r} returned {len(result)} series; it must return one value"
                )
            value = result[0].get("value") if isinstance(result[0], dict) else None
        else:
            raise PrometheusError(f"query {promql!r} returned a {kind}, not a single value")
        return _number(promql, value)

    async def vector(self, promql: str, label: str) -> dict[str, float]:
        """Run an instant query returning one series per value of `label`; return
        label value -> value (series without a finite value are left out)."""
        kind, result = await self._answer(promql)
        if kind != "vector":
            raise PrometheusError(f"query {promql!r} returned a {kind}, not a vector")
        out: dict[str, float] = {}
        for series in result or ():
            metric = series.get("metric") if isinstance(series, dict) else None
            if not isinstance(metric, dict) or not isinstance(metric.get(label), str):
                raise PrometheusError(f"query {promql!r} returned a series without {label}")
            number = _number(promql, series.get("value"))
            if number is not None:
                out[metric[label]] = number
        return out

    async def _answer(self, promql: str) -> tuple[Any, Any]:
        """(resultType, result) of an instant query; PrometheusError when it failed."""
        try:
            response, raw = await read_bounded(
                self.client,
                self.url,
                params={"query": promql},
                max_bytes=MAX_ANSWER_BYTES,
                deadline=self.timeout,
            )
        except (TimeoutError, ValueError) as exc:
            detail = str(exc) or f"no complete answer within {self.timeout:g}s"
            raise PrometheusError(f"query {promql!r}: {detail}") from exc
        try:
            body: Any = json.loads(raw)
        except ValueError as exc:
            raise PrometheusError(
                f"HTTP {response.status_code} from {self.url} is not JSON"
            ) from exc
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else None
            kind = body.get("errorType") if isinstance(body, dict) else None
            raise PrometheusError(
                f"query {promql!r} failed (HTTP {response.status_code}): "
                f"{kind or 'error'}: {error or raw[:200].decode(errors='replace')}"
            )
        data = body.get("data") or {}
        return data.get("resultType"), data.get("result")

    async def canary_metrics(
        self, namespace: str, name: str, request: MetricsRequest
    ) -> AnalysisMetrics | MetricsUnavailable:
        """Requests, errors, p99 (and the custom query) of the canary over the window."""
        queries = default_queries(namespace, name, request.revision, request.window_seconds)
        if request.custom_query:
            custom = render_custom(request.custom_query, namespace, name, request.revision)
            try:
                require_namespace(custom, namespace)
            except QueryRefused as exc:
                return MetricsUnavailable(f"custom query {custom!r} refused: {exc}")
            queries["custom"] = custom
        if request.quality_baseline is not None:
            queries.update(
                quality_queries(
                    namespace,
                    name,
                    request.revision,
                    request.quality_baseline,
                    request.window_seconds,
                )
            )
        try:
            values = dict(
                zip(
                    queries,
                    await asyncio.gather(*(self.query(q) for q in queries.values())),
                    strict=True,
                )
            )
        except (httpx.HTTPError, PrometheusError) as exc:
            return MetricsUnavailable(f"prometheus: {exc}")
        if request.custom_query and values["custom"] is None:
            return MetricsUnavailable(f"custom query {queries['custom']!r} returned no data")
        p99 = values["p99"]
        quality = None
        if request.quality_baseline is not None:
            quality = Quality(
                scored=values["scored"] or 0.0,
                correct=values["correct"] or 0.0,
                stable_scored=values["stable_scored"] or 0.0,
                stable_correct=values["stable_correct"] or 0.0,
            )
        return AnalysisMetrics(
            requests=values["requests"] or 0.0,
            errors=values["errors"] or 0.0,
            p99_ms=None if p99 is None else p99 * 1000.0,
            custom=values.get("custom"),
            quality=quality,
        )

    async def experiment_counters(
        self, namespace: str, name: str, request: ExperimentRequest, now: datetime
    ) -> ArmCounters:
        """Each arm's sufficient statistics since the experiment started."""
        seconds = (now - request.since).total_seconds()
        queries: dict[str, ArmQueries] = {}
        for arm, revision in request.arms:
            if request.custom is None:
                queries[arm] = arm_queries(request.metric, namespace, name, arm, seconds)
                continue
            values = {
                "namespace": namespace,
                "name": name,
                "variant": arm,
                "revision": revision,
                "range": window(seconds),
            }
            queries[arm] = custom_queries(*request.custom, values)
            for query in (queries[arm].count, queries[arm].total):
                try:
                    require_namespace(query, namespace)
                except QueryRefused as exc:
                    return MetricsUnavailable(f"experiment query {query!r} refused: {exc}")
        texts = [
            q
            for arm in queries.values()
            for q in (arm.count, arm.total, arm.squares)
            if q is not None
        ]
        try:
            answers = dict(
                zip(texts, await asyncio.gather(*(self.query(q) for q in texts)), strict=True)
            )
        except (httpx.HTTPError, PrometheusError) as exc:
            return MetricsUnavailable(f"prometheus: {exc}")
        counters: dict[str, Totals] = {}
        for arm, q in queries.items():
            count, total = answers[q.count] or 0.0, answers[q.total] or 0.0
            if request.custom is not None and total > count:
                return MetricsUnavailable(
                    f"arm {arm}: numerator {total:g} exceeds denominator {count:g}"
                )
            squares = total
            if q.squares is not None:
                found = answers[q.squares]
                if found is None and count > 0:
                    return MetricsUnavailable(f"arm {arm}: no data for {q.squares!r}")
                squares = found or 0.0
            counters[arm] = Totals(count=count, total=total, squares=squares)
        return counters
