"""The payload logger: samples predictions and hands them to every sink's sender.

Limits: the request path pays one random draw (only when ``sampleRate`` < 1), one
``Record`` and one non-blocking ``put_nowait`` per sink; it never waits on a sink. Each
sink has its own queue and thread, so a dead sink never delays another. ``close``
flushes every sink in parallel within ``flushTimeoutSeconds``.
"""

from __future__ import annotations

import random
import socket
from collections import Counter
from functools import partial
from time import monotonic

from prometheus_client import CollectorRegistry

from kubeserve_runtime.payloadlog.config import LoggerConfig, SinkConfig
from kubeserve_runtime.payloadlog.event import Origin, Record, record_events
from kubeserve_runtime.payloadlog.http import HttpSink
from kubeserve_runtime.payloadlog.metrics import PayloadMetrics
from kubeserve_runtime.payloadlog.s3 import S3Sink
from kubeserve_runtime.payloadlog.sender import SinkSender
from kubeserve_runtime.payloadlog.sink import Sink
from kubeserve_runtime.payloadlog.stdout import StdoutSink


def sink_names(sinks: list[SinkConfig]) -> list[str]:
    """Metric label of each sink: its kind, numbered from the second of a kind (http-2)."""
    seen: Counter[str] = Counter()
    names = []
    for sink in sinks:
        seen[sink.kind] += 1
        names.append(sink.kind if seen[sink.kind] == 1 else f"{sink.kind}-{seen[sink.kind]}")
    return names


def build_sink(config: SinkConfig, origin: Origin) -> Sink:
    """The sink a configuration entry describes."""
    if config.http is not None:
        return HttpSink(config.http)
    if config.s3 is not None:
        return S3Sink(config.s3, origin)
    return StdoutSink()


def pod_source(host: str | None = None) -> str:
    """The CloudEvents ``source`` of this replica: ``http://<pod name>/``."""
    return f"http://{host or socket.gethostname()}/"


class PayloadLogger:
    """Samples records and offers them to each sink."""

    def __init__(
        self, config: LoggerConfig, origin: Origin, model: str, registry: CollectorRegistry
    ) -> None:
        self.config = config
        self._rate = config.sample_rate
        self._random = random.random
        metrics = PayloadMetrics(registry)
        expand = partial(
            record_events,
            origin=origin,
            model=model,
            mode=config.mode,
            redact=frozenset(config.redact),
        )
        per_record = 2 if config.mode == "all" else 1
        self._senders = [
            SinkSender(
                name, build_sink(sink, origin), metrics, config.queue_size, expand, per_record
            )
            for name, sink in zip(sink_names(config.sinks), config.sinks, strict=True)
        ]

    def sampled(self) -> bool:
        """Whether to log this prediction (always at sampleRate 1, never at 0)."""
        return self._rate >= 1.0 or (self._rate > 0.0 and self._random() < self._rate)

    def log(self, record: Record) -> None:
        """Offer a record to every sink (non-blocking)."""
        for sender in self._senders:
            sender.offer(record)

    def close(self) -> None:
        """Flush every sink in parallel within ``flushTimeoutSeconds``, then stop them."""
        deadline = monotonic() + self.config.flush_timeout_seconds
        for sender in self._senders:
            sender.begin_close(deadline)
        for sender in self._senders:
            sender.join()
