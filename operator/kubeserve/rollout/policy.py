"""The rollout policy: the parts of an InferenceService spec the rollout logic reads.

The decision function works on these small frozen dataclasses rather than on the full
API models, so it depends only on what it uses and its tests stay short. The spec it
reads from is the object as the API server stored it (camelCase, already validated by
the CRD schema and its CEL rules). The rollout block goes through the API model
(:class:`kubeserve.api.v1alpha1.Rollout`), so its defaults are defined in one place;
predictor specs stay raw mappings because revisions are hashes of exactly what is stored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeserve.api import v1alpha1 as api

DEFAULT_INTERVAL_SECONDS = 60.0
"""How long each step (and each analysis window) lasts when `interval` is not set."""

DEFAULT_FAILURE_THRESHOLD = 2
"""Failed analysis checks in a row that trigger a rollback when not set."""

_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | float) -> float:
    """Return seconds from a Go-style duration (`90s`, `5m`, `1m30s`) or a number of seconds."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            parts = list(_DURATION.finditer(text))
            if not parts or "".join(p.group(0) for p in parts) != text:
                raise ValueError(f"invalid duration {value!r}: use e.g. 30s, 5m, 1h or 1m30s")
            seconds = sum(float(p["value"]) * _UNIT_SECONDS[p["unit"]] for p in parts)
    if seconds <= 0 or not math.isfinite(seconds):
        raise ValueError(f"invalid duration {value!r}: must be positive")
    return seconds


@dataclass(frozen=True)
class Replicas:
    """Replica bounds of one predictor at full capacity."""

    min: int
    max: int

    @classmethod
    def of(cls, predictor: Mapping[str, Any]) -> Replicas:
        """Read `minReplicas`/`maxReplicas` from a predictor spec (defaults 1 and min)."""
        low = int(predictor.get("minReplicas", 1))
        high = int(predictor.get("maxReplicas", max(low, 1)))
        return cls(low, max(low, high))

    def promotion_size(self, serving_ready: int) -> int:
        """Ready replicas a newcomer needs before it replaces a workload that has
        `serving_ready` ready replicas now (HPA scale-out included), within these bounds."""
        return min(max(serving_ready, self.min, 1), max(self.max, 1))

    def share(self, percent: int) -> Replicas:
        """Bounds for a canary taking `percent` of the traffic (at least one replica)."""
        low = max(1, math.ceil(self.min * percent / 100))
        high = max(low, math.ceil(self.max * percent / 100))
        return Replicas(low, high)


@dataclass(frozen=True)
class CustomCheck:
    """A user PromQL query whose scalar result must stay at or below `max_value`."""

    query: str
    max_value: float


@dataclass(frozen=True)
class Analysis:
    """Thresholds a canary must meet at each check."""

    max_error_rate: float | None = None
    max_latency_p99_ms: float | None = None
    min_requests: int = 0
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    """Failed checks during one canary's rollout (not necessarily in a row) that roll it back."""
    custom: CustomCheck | None = None
    min_accuracy: float | None = None
    """Lowest canary accuracy from ground-truth feedback over the window."""
    max_quality_drop: float | None = None
    """Largest accuracy drop of the canary below the stable revision over the window."""
    min_feedback: int = 20
    """Scored predictions (canary, and stable for the drop) before quality is judged."""

    @property
    def quality_gated(self) -> bool:
        """Whether a check reads ground-truth feedback."""
        return self.min_accuracy is not None or self.max_quality_drop is not None

    @classmethod
    def of(cls, model: api.Analysis) -> Analysis:
        """Convert the API model (its defaults applied)."""
        return cls(
            max_error_rate=model.max_error_rate,
            max_latency_p99_ms=model.max_latency_p99_ms,
            min_requests=model.min_requests,
            failure_threshold=model.failure_threshold,
            custom=None if model.query is None else CustomCheck(model.query, model.query_max),
            min_accuracy=model.min_accuracy,
            max_quality_drop=model.max_quality_drop,
            min_feedback=model.min_feedback,
        )


@dataclass(frozen=True)
class Rollout:
    """How a new revision of the main predictor replaces the stable one."""

    canary_traffic_percent: int | None = None
    steps: tuple[int, ...] = ()
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    analysis: Analysis | None = None
    """Checks on the canary: always for steps (defaults when unset), opt-in for manual."""
    history_limit: int | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Rollout:
        """Read a `rollout` block (validated and defaulted by the API model)."""
        model = api.Rollout.model_validate(spec)
        analysis = model.analysis
        if analysis is None and model.steps:
            analysis = api.Analysis()
        return cls(
            canary_traffic_percent=model.canary_traffic_percent,
            steps=tuple(model.steps or ()),
            interval_seconds=parse_duration(model.interval),
            analysis=None if analysis is None else Analysis.of(analysis),
            history_limit=model.history_limit,
        )

    @property
    def progressive(self) -> bool:
        """Whether traffic advances through `steps` on a timer while analysis passes."""
        return bool(self.steps)

    @property
    def promotes(self) -> bool:
        """Whether the newest revision should take all traffic now (no canary wanted)."""
        if self.progressive:
            return False
        return self.canary_traffic_percent is None or self.canary_traffic_percent >= 100


@dataclass(frozen=True)
class Variant:
    """A named A/B predictor with a share of the default traffic and header matches."""

    name: str
    weight: int
    headers: tuple[tuple[str, str], ...]
    predictor: Mapping[str, Any]


@dataclass(frozen=True)
class MirrorSpec:
    """Shadow `percent` of the traffic to variant `variant`."""

    variant: str
    percent: int


@dataclass(frozen=True)
class Policy:
    """Everything the rollout decision reads from an InferenceService spec."""

    predictor: Mapping[str, Any]
    rollout: Rollout | None = None
    variants: tuple[Variant, ...] = ()
    mirror: MirrorSpec | None = None
    experiment: api.Experiment | None = None
    """The A/B experiment (the API model: its defaults are defined there)."""

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Policy:
        """Read the policy from an InferenceService `spec` mapping (camelCase)."""
        rollout = spec.get("rollout")
        mirror = spec.get("mirror")
        experiment = spec.get("experiment")
        variants = tuple(
            Variant(
                name=str(v["name"]),
                weight=int(v.get("weight", 0)),
                headers=tuple(
                    sorted(
                        (str(k), str(val))
                        for k, val in (v.get("match") or {}).get("headers", {}).items()
                    )
                ),
                predictor=api.variant_predictor(v["predictor"], spec["predictor"]),
            )
            for v in spec.get("variants") or ()
        )
        return cls(
            predictor=spec["predictor"],
            rollout=None if rollout is None else Rollout.from_spec(rollout),
            variants=tuple(sorted(variants, key=lambda v: v.name)),
            mirror=(
                None
                if mirror is None
                else MirrorSpec(str(mirror["variant"]), int(mirror.get("percent", 100)))
            ),
            experiment=None if experiment is None else api.Experiment.model_validate(experiment),
        )

    @property
    def interval_seconds(self) -> float:
        """Time between looks at canary analysis and experiments (the rollout's interval)."""
        return DEFAULT_INTERVAL_SECONDS if self.rollout is None else self.rollout.interval_seconds

    def with_weights(self, weights: Mapping[str, int]) -> Policy:
        """The same policy with these variants' weights replaced (a promotion's routes)."""
        variants = tuple(
            Variant(v.name, weights.get(v.name, v.weight), v.headers, v.predictor)
            for v in self.variants
        )
        return Policy(self.predictor, self.rollout, variants, self.mirror, self.experiment)

    @property
    def main_weight(self) -> int:
        """Percent of the default traffic left to the main predictor after the variants."""
        return max(0, 100 - sum(v.weight for v in self.variants))
