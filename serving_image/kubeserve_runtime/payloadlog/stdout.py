"""The stdout sink: one JSON line per event on the runtime's stdout.

Limits: lines go through the runtime's JSON log formatter (logger
``kubeserve_runtime.payload``, message ``payload``), so they interleave safely with
the other log lines; the event, in CloudEvents structured form, is the line's
``event`` field. Stdout does not fail the way a network sink does, so nothing is
retried or dropped here unless writing raises.
"""

from __future__ import annotations

import logging

from kubeserve_runtime.payloadlog.event import Event

payload_logger = logging.getLogger("kubeserve_runtime.payload")


class StdoutSink:
    """Writes events as log lines."""

    max_batch = 256
    max_wait_s = 0.0

    def send(self, events: list[Event]) -> None:
        """Write one line per event."""
        for event in events:
            payload_logger.info("payload", extra={"fields": {"event": event.structured()}})

    def close(self) -> None:
        """Nothing to release."""
