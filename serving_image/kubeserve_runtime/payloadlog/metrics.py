"""The payload logger's metric families, in the runtime's registry.

``kubeserve_payload_events_sent_total{sink}``, ``kubeserve_payload_events_dropped_total
{sink,reason}`` (reason: ``queue_full`` when the bounded queue had no room, ``send_failed``
when every retry of a batch failed, ``shutdown`` when the flush bound ran out,
``encode_failed`` when a record could not be written as JSON),
``kubeserve_payload_send_failures_total{sink}`` (failed send attempts, retries included)
and the gauge ``kubeserve_payload_queue_depth{sink}`` (records waiting, read at scrape
time). Events are counted one by one; a record holds one or two events (by mode), so
``queue_full`` drops count the record's events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

DROP_REASONS = ("queue_full", "send_failed", "shutdown", "encode_failed")


class PayloadMetrics:
    """The families; ``for_sink`` binds the children of one sink."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "kubeserve_payload_events_sent",
            "Payload events delivered to a sink.",
            ["sink"],
            registry=registry,
        )
        self.dropped = Counter(
            "kubeserve_payload_events_dropped",
            "Payload events dropped, by sink and reason.",
            ["sink", "reason"],
            registry=registry,
        )
        self.failures = Counter(
            "kubeserve_payload_send_failures",
            "Failed attempts to send a batch of payload events (each retry counts).",
            ["sink"],
            registry=registry,
        )
        self.depth = Gauge(
            "kubeserve_payload_queue_depth",
            "Payload records waiting for a sink's sender.",
            ["sink"],
            registry=registry,
        )

    def for_sink(self, sink: str, depth: Callable[[], float]) -> SinkMetrics:
        """The pre-bound children of one sink; its queue depth is read from ``depth``."""
        self.depth.labels(sink).set_function(depth)
        return SinkMetrics(
            sent=self.sent.labels(sink),
            failures=self.failures.labels(sink),
            dropped={reason: self.dropped.labels(sink, reason) for reason in DROP_REASONS},
        )


class SinkMetrics:
    """One sink's counters (children bound once, so the hot path does no label lookup)."""

    __slots__ = ("dropped", "failures", "sent")

    def __init__(self, sent: Any, failures: Any, dropped: dict[str, Any]) -> None:
        self.sent = sent
        self.failures = failures
        self.dropped = dropped
