"""Per-feature input drift: Population Stability Index against a reference profile.

A model directory may ship ``reference_profile.json`` (made with ``build_profile`` from
training data)::

    {"input": "input-0",
     "features": [{"name": "sepal_length", "edges": [4.9, 5.4, ...],
                   "expected": [0.1, 0.12, ...]}]}

``edges`` are the interior cut points (k of them, k+1 bins); ``expected`` the share of
training rows per bin. The monitor counts served rows per bin over a sliding window of
about ``window`` rows (two rotating halves) and exports ``kubeserve_input_drift_psi``
per feature when scraped: ``sum((a - e) * ln(a / e))`` with shares clamped to 1e-4.
Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major drift.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field, model_validator

PROFILE_FILE = "reference_profile.json"
_EPS = 1e-4


class FeatureProfile(BaseModel):
    """The training distribution of one feature."""

    name: str
    edges: list[float]
    expected: list[float]

    @model_validator(mode="after")
    def _check(self) -> Self:
        """Require k edges, k+1 shares, increasing edges."""
        if len(self.expected) != len(self.edges) + 1:
            raise ValueError(f"feature {self.name!r}: expected needs len(edges) + 1 values")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"feature {self.name!r}: edges must increase")
        return self


class ReferenceProfile(BaseModel):
    """The reference profile shipped with a model."""

    input: str | None = None
    features: list[FeatureProfile] = Field(min_length=1)

    @classmethod
    def find(cls, model_dir: Path) -> ReferenceProfile | None:
        """Load ``reference_profile.json`` from a model directory when present."""
        path = model_dir / PROFILE_FILE
        if not path.is_file():
            return None
        return cls.model_validate(orjson.loads(path.read_bytes()))


def build_profile(
    data: np.ndarray[Any, Any],
    names: Sequence[str] | None = None,
    bins: int = 10,
    input_name: str | None = None,
) -> dict[str, Any]:
    """Return a reference profile (JSON-ready dict) from training rows (2-D array)."""
    matrix = np.asarray(data, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError("build_profile needs a 2-D array: rows x features")
    features = []
    for column in range(matrix.shape[1]):
        values = matrix[:, column]
        edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        features.append(
            {
                "name": names[column] if names else f"feature-{column}",
                "edges": edges.tolist(),
                "expected": (counts / counts.sum()).tolist(),
            }
        )
    return {"input": input_name, "features": features}


def psi(expected: np.ndarray[Any, Any], actual: np.ndarray[Any, Any]) -> float:
    """Return the Population Stability Index of two share vectors."""
    e = np.clip(expected, _EPS, None)
    a = np.clip(actual, _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


class DriftMonitor(Collector):
    """Counts served feature values per bin and exports PSI when scraped."""

    def __init__(
        self,
        profile: ReferenceProfile,
        registry: CollectorRegistry,
        model: str,
        version: str,
        window: int = 10_000,
    ) -> None:
        self.profile = profile
        self._labels = [model, version]
        self._edges = [np.asarray(f.edges, dtype=np.float64) for f in profile.features]
        self._expected = [np.asarray(f.expected, dtype=np.float64) for f in profile.features]
        self._half = max(1, window // 2)
        self._current = [np.zeros(len(e) + 1, dtype=np.int64) for e in self._edges]
        self._previous = [np.zeros(len(e) + 1, dtype=np.int64) for e in self._edges]
        self._current_rows = 0
        self._observed = 0
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, array: np.ndarray[Any, Any]) -> None:
        """Count the rows of a 2-D numeric input (other shapes are ignored)."""
        if array.ndim != 2 or array.shape[1] != len(self._edges) or array.dtype.kind not in "fiub":
            return
        with self._lock:
            if self._current_rows >= self._half:
                self._previous, self._current = self._current, self._previous
                for counts in self._current:
                    counts[:] = 0
                self._current_rows = 0
            for column, edges in enumerate(self._edges):
                bins = np.searchsorted(edges, array[:, column], side="right")
                self._current[column] += np.bincount(bins, minlength=len(edges) + 1)
            self._current_rows += array.shape[0]
            self._observed += array.shape[0]

    def values(self) -> dict[str, float]:
        """Return the current PSI per feature name (features with no rows are left out)."""
        out: dict[str, float] = {}
        with self._lock:
            for feature, expected, cur, prev in zip(
                self.profile.features, self._expected, self._current, self._previous, strict=True
            ):
                counts = cur + prev
                total = counts.sum()
                if total:
                    out[feature.name] = psi(expected, counts / total)
        return out

    def collect(self) -> Iterator[Metric]:
        """Yield the PSI gauge family and the observed-rows counter."""
        gauge = GaugeMetricFamily(
            "kubeserve_input_drift_psi",
            "Population Stability Index of each input feature vs the reference profile.",
            labels=["model", "version", "feature"],
        )
        for name, value in self.values().items():
            gauge.add_metric([*self._labels, name], value)
        yield gauge
        rows = CounterMetricFamily(
            "kubeserve_drift_observed_rows",
            "Rows counted by the drift monitor.",
            labels=["model", "version"],
        )
        rows.add_metric(self._labels, self._observed)
        yield rows
