"""Operator metrics (prometheus-client), on their own registry so tests stay isolated.

Limits: ``kubeserve_inferenceservice_condition`` holds what this replica last wrote to
each InferenceService's status (the leader's view; a standby exports nothing for it) and
carries ``namespace``/``name`` labels of the InferenceService, so a scrape must honour the
exposed labels (the chart's ServiceMonitor sets ``honorLabels``) or they are renamed
``exported_namespace``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class OperatorMetrics:
    """Reconcile counts, errors, durations, API writes, managed objects and the status
    conditions of each InferenceService."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.reconciles = Counter(
            "kubeserve_reconcile_total",
            "Reconcile passes by result (success, error).",
            ["result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "kubeserve_reconcile_errors_total",
            "Reconcile passes that raised, by exception type.",
            ["error"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "kubeserve_reconcile_duration_seconds",
            "Duration of one reconcile pass.",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.api_requests = Counter(
            "kubeserve_api_requests_total",
            "Requests the operator sent to the Kubernetes API, by verb and kind.",
            ["verb", "kind"],
            registry=self.registry,
        )
        self.managed = Gauge(
            "kubeserve_managed_inferenceservices",
            "InferenceServices this operator currently manages.",
            registry=self.registry,
        )
        self.conditions = Gauge(
            "kubeserve_inferenceservice_condition",
            "Status conditions of each InferenceService as last written: 1 when True, "
            "0 when False or Unknown (types Ready, PredictorReady, RolloutProgressing, "
            "RolloutSucceeded, RolledBack, ...).",
            ["namespace", "name", "type"],
            registry=self.registry,
        )
        self._condition_types: dict[tuple[str, str], set[str]] = {}

    def record_conditions(
        self, namespace: str, name: str, conditions: Iterable[Mapping[str, Any]]
    ) -> None:
        """Set one InferenceService's condition series; drop types it no longer has."""
        types = set()
        for condition in conditions:
            type_ = str(condition["type"])
            types.add(type_)
            value = 1.0 if condition.get("status") == "True" else 0.0
            self.conditions.labels(namespace, name, type_).set(value)
        for gone in self._condition_types.get((namespace, name), set()) - types:
            self.conditions.remove(namespace, name, gone)
        self._condition_types[(namespace, name)] = types

    def forget(self, namespace: str, name: str) -> None:
        """Drop the series of a deleted InferenceService."""
        for type_ in self._condition_types.pop((namespace, name), set()):
            self.conditions.remove(namespace, name, type_)
