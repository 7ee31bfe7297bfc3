"""Where each experiment metric's counters come from: the series, as PromQL per arm.

The one place naming the series an experiment reads. Each metric needs, per arm and
since the experiment started, a count of observations, their sum and (for a mean) the
sum of their squares; a proportion's sum of squares is its sum. Every selector carries
`namespace`, `model` (the InferenceService) and `variant` (`predictor` or the variant's
name), and :data:`RANDOMIZED` so requests routed by a header match (not randomized) are
left out once the runtime marks them.

The runtime exports every series named here (request series carry `variant` and
`routed`, feedback series `variant`: :mod:`kubeserve_runtime.metrics.registry`,
:mod:`kubeserve_runtime.feedback.quality`). Limits: a query on a missing series (no
request or feedback yet, or pods of an older runtime) returns no data, which the reader
reports as unavailable rather than as zero; only the Gateway API route marks
header-matched requests, so with ingress-nginx they count as randomized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kubeserve_runtime import contract

REQUESTS = "kubeserve_requests_total"
DURATION_COUNT = "kubeserve_request_duration_seconds_count"
DURATION_SUM = "kubeserve_request_duration_seconds_sum"
DURATION_SQUARES = "kubeserve_request_duration_seconds_squared_total"
FEEDBACK = "kubeserve_feedback_total"
FEEDBACK_CORRECT = "kubeserve_feedback_correct_total"
REWARD_COUNT = "kubeserve_feedback_reward_count"
REWARD_SUM = "kubeserve_feedback_reward_sum"
REWARD_SQUARES = "kubeserve_feedback_reward_squared_total"
CONVERSIONS = "kubeserve_feedback_conversions_total"
VARIANT_LABEL = contract.METRIC_LABEL_VARIANT
RANDOMIZED = f'{contract.METRIC_LABEL_ROUTED}!="{contract.ROUTED_BY_HEADER}"'
"""Matches requests the route split at random (and series without the `routed` label)."""


@dataclass(frozen=True)
class Series:
    """The counters of one metric: observations, their sum, and their squares' sum."""

    count: str
    total: str
    squares: str | None = None
    """None for a proportion (0/1 observations: the squares' sum is the sum)."""


SERIES: dict[str, Series] = {
    "errorRate": Series(count=REQUESTS, total=REQUESTS + '{status=~"5.."}'),
    "latencyMean": Series(count=DURATION_COUNT, total=DURATION_SUM, squares=DURATION_SQUARES),
    "accuracy": Series(count=FEEDBACK, total=FEEDBACK_CORRECT),
    "reward": Series(count=REWARD_COUNT, total=REWARD_SUM, squares=REWARD_SQUARES),
    "conversion": Series(count=REWARD_COUNT, total=CONVERSIONS),
}


@dataclass(frozen=True)
class ArmQueries:
    """The PromQL of one arm: count, sum and (for a mean) sum of squares."""

    count: str
    total: str
    squares: str | None = None


def _quote(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _increase(series: str, matchers: str, window: str) -> str:
    """sum(increase(name{matchers, extra}[window])) for `name` or `name{extra}`."""
    name, _, extra = series.partition("{")
    inner = matchers + ("," + extra.rstrip("}") if extra else "")
    return f"sum(increase({name}{{{inner}}}[{window}]))"


def window(seconds: float) -> str:
    """A PromQL range covering `seconds` (at least one second)."""
    return f"{max(1, math.ceil(seconds))}s"


def arm_queries(metric: str, namespace: str, name: str, arm: str, seconds: float) -> ArmQueries:
    """The queries of a built-in metric for one arm over the experiment's age."""
    series = SERIES[metric]
    matchers = (
        f"namespace={_quote(namespace)},model={_quote(name)},"
        f"{VARIANT_LABEL}={_quote(arm)},{RANDOMIZED}"
    )
    span = window(seconds)
    squares = None if series.squares is None else _increase(series.squares, matchers, span)
    return ArmQueries(
        count=_increase(series.count, matchers, span),
        total=_increase(series.total, matchers, span),
        squares=squares,
    )


def custom_queries(
    numerator: str,
    denominator: str,
    placeholders: dict[str, str],
) -> ArmQueries:
    """A custom proportion's queries with {namespace}, {name}, {variant}, {revision} and
    {range} replaced literally (PromQL's own braces are left alone)."""

    def render(query: str) -> str:
        for key, value in placeholders.items():
            query = query.replace("{" + key + "}", value)
        return query

    return ArmQueries(count=render(denominator), total=render(numerator))
