"""The interface every payload sink implements (http, s3, stdout).

Limits: ``send`` runs on the sink's own sender thread, never on the event loop, and
raises on any failure (the sender retries the whole batch and counts it); a sink holds
no queue of its own.
"""

from __future__ import annotations

from typing import Protocol

from kubeserve_runtime.payloadlog.event import Event


class Sink(Protocol):
    """Delivers batches of events somewhere."""

    max_batch: int
    """Most events per ``send`` call."""
    max_wait_s: float
    """Longest a batch waits to fill after its first event (0 = send what is queued)."""

    def send(self, events: list[Event]) -> None:
        """Deliver the events or raise."""

    def close(self) -> None:
        """Release connections."""
