"""The operator's condition gauge: one series per InferenceService and condition type."""

from __future__ import annotations

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kubeserve.controller.metrics import OperatorMetrics

FAMILY = "kubeserve_inferenceservice_condition"


def conditions(metrics: OperatorMetrics) -> dict[tuple[str, str, str], float]:
    """(namespace, name, type) -> value, from the registry's exposition text."""
    text = generate_latest(metrics.registry).decode()
    return {
        (s.labels["namespace"], s.labels["name"], s.labels["type"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == FAMILY
        for s in family.samples
    }


def test_conditions_follow_the_last_written_status() -> None:
    metrics = OperatorMetrics()
    metrics.record_conditions(
        "ml",
        "iris",
        [
            {"type": "Ready", "status": "True"},
            {"type": "RolledBack", "status": "False"},
            {"type": "RoutesReady", "status": "Unknown"},
        ],
    )
    metrics.record_conditions("ml", "wine", [{"type": "Ready", "status": "False"}])
    assert conditions(metrics) == {
        ("ml", "iris", "Ready"): 1.0,
        ("ml", "iris", "RolledBack"): 0.0,
        ("ml", "iris", "RoutesReady"): 0.0,
        ("ml", "wine", "Ready"): 0.0,
    }
    # a later status without RoutesReady drops its series; RolledBack turns True
    metrics.record_conditions(
        "ml",
        "iris",
        [{"type": "Ready", "status": "True"}, {"type": "RolledBack", "status": "True"}],
    )
    assert conditions(metrics) == {
        ("ml", "iris", "Ready"): 1.0,
        ("ml", "iris", "RolledBack"): 1.0,
        ("ml", "wine", "Ready"): 0.0,
    }


def test_a_forgotten_inferenceservice_exports_nothing() -> None:
    metrics = OperatorMetrics()
    metrics.record_conditions("ml", "iris", [{"type": "Ready", "status": "True"}])
    metrics.record_conditions("ml", "wine", [{"type": "Ready", "status": "True"}])
    metrics.forget("ml", "iris")
    metrics.forget("ml", "never-seen")
    assert conditions(metrics) == {("ml", "wine", "Ready"): 1.0}
