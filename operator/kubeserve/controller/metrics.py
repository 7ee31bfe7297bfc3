"""Operator metrics (prometheus-client), on their own registry so tests stay isolated."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class OperatorMetrics:
    """Reconcile counts, errors, durations, API writes and managed objects."""

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
