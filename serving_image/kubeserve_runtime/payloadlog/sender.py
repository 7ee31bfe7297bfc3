"""One sink's bounded queue and the background thread that empties it.

Limits: the queue holds at most ``queueSize`` records; ``offer`` never blocks (a full
queue drops the record and counts it, ``queue_full``). The thread takes up to the
sink's ``max_batch`` events, waiting at most ``max_wait_s`` after the first, sends
them, and on failure retries the whole batch ``RETRY_ATTEMPTS`` times in all with
exponential backoff (``RETRY_MIN_SECONDS`` doubling up to ``RETRY_MAX_SECONDS``, via
tenacity) before dropping it (``send_failed``). Nothing is ever queued without bound: a
sink that stays down costs the retries of the batch in hand, and every other record is
dropped at the queue. At close, what is queued is sent until the deadline; the rest is
dropped (``shutdown``). A record that cannot be encoded is dropped
(``encode_failed``). Failures are logged at most once per ``WARNING_INTERVAL_SECONDS``
per sink.

Encoding (redaction, JSON) happens here, on the sender thread: the request path only
puts a reference on the queue. The thread still shares the interpreter with inference,
so encoding costs CPU there; ``bench/payloadlog.py`` measures what that costs.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from time import monotonic
from typing import Any

from tenacity import RetryCallState, Retrying, stop_after_attempt, stop_any, wait_exponential
from tenacity.stop import stop_base

from kubeserve_runtime.payloadlog.event import Event, Record
from kubeserve_runtime.payloadlog.metrics import PayloadMetrics
from kubeserve_runtime.payloadlog.sink import Sink

RETRY_ATTEMPTS = 3
RETRY_MIN_SECONDS = 0.1
RETRY_MAX_SECONDS = 2.0
POLL_SECONDS = 0.05
"""How often a waiting sender looks at its close flag."""
WARNING_INTERVAL_SECONDS = 60.0
log = logging.getLogger(__name__)

Expand = Callable[[Record], list[Event]]


class _PastDeadline(stop_base):
    """tenacity stop condition: the sender's shutdown deadline has passed."""

    def __init__(self, sender: SinkSender) -> None:
        self._sender = sender

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._sender.past_deadline()


class SinkSender:
    """Queue plus sender thread of one sink."""

    def __init__(
        self,
        name: str,
        sink: Sink,
        metrics: PayloadMetrics,
        queue_size: int,
        expand: Expand,
        events_per_record: int,
    ) -> None:
        self.name = name
        self._sink = sink
        self._queue: queue.Queue[Record] = queue.Queue(queue_size)
        self._metrics = metrics.for_sink(name, self._queue.qsize)
        self._expand = expand
        self._per_record = events_per_record
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._next_warning = 0.0
        self._thread = threading.Thread(target=self._run, name=f"payload-{name}", daemon=True)
        self._thread.start()

    # -- the request path ------------------------------------------------------------

    def offer(self, record: Record) -> None:
        """Queue a record, or drop and count it when the queue is full (never blocks)."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._metrics.dropped["queue_full"].inc(self._per_record)

    # -- shutdown --------------------------------------------------------------------

    def begin_close(self, deadline: float) -> None:
        """Flush what is queued until ``deadline`` (monotonic), then stop."""
        self._deadline = deadline
        self._closing.set()

    def join(self) -> None:
        """Wait for the thread (it stops by the deadline, plus one send in flight)."""
        self._thread.join(max(0.0, self._deadline - monotonic()) + RETRY_MAX_SECONDS)

    # -- the sender thread -----------------------------------------------------------

    def past_deadline(self) -> bool:
        """Whether the sender is closing and its flush deadline has passed."""
        return self._closing.is_set() and monotonic() >= self._deadline

    def _run(self) -> None:
        pending: list[Event] = []
        try:
            while not self.past_deadline():
                batch = self._take(pending)
                if batch:
                    self._deliver(batch)
                elif self._closing.is_set():
                    break
            left = len(pending)
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
                left += self._per_record
            if left:
                self._metrics.dropped["shutdown"].inc(left)
        finally:
            self._sink.close()

    def _take(self, pending: list[Event]) -> list[Event]:
        """Fill ``pending`` up to a batch (waiting as the sink allows) and cut one off."""
        limit = self._sink.max_batch
        first_at = monotonic() if pending else None
        while len(pending) < limit:
            closing = self._closing.is_set()
            if first_at is None:
                wait = 0.0 if closing else POLL_SECONDS
            else:
                remaining = first_at + self._sink.max_wait_s - monotonic()
                wait = 0.0 if closing or remaining <= 0 else min(remaining, POLL_SECONDS)
            try:
                record = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                if first_at is None or closing:
                    break
                if monotonic() >= first_at + self._sink.max_wait_s:
                    break
                continue
            if first_at is None:
                first_at = monotonic()
            try:
                pending.extend(self._expand(record))
            except Exception as exc:  # a tensor the encoder cannot write: drop, never die
                self._metrics.dropped["encode_failed"].inc(self._per_record)
                self._warn(exc)
        batch = pending[:limit]
        del pending[:limit]
        return batch

    def _deliver(self, batch: list[Event]) -> None:
        """Send a batch with retries; count it sent or dropped."""
        retrying = Retrying(
            stop=stop_any(stop_after_attempt(RETRY_ATTEMPTS), _PastDeadline(self)),
            wait=wait_exponential(multiplier=RETRY_MIN_SECONDS, max=RETRY_MAX_SECONDS),
            sleep=self._backoff,
            reraise=True,
        )
        try:
            retrying(self._attempt, batch)
        except Exception as exc:  # every kind of sink failure ends the same way
            self._metrics.dropped["send_failed"].inc(len(batch))
            self._warn(exc)
        else:
            self._metrics.sent.inc(len(batch))

    def _backoff(self, seconds: float) -> None:
        """Wait between retries; a close cuts the wait short."""
        self._closing.wait(seconds)

    def _attempt(self, batch: list[Event]) -> Any:
        try:
            self._sink.send(batch)
        except Exception:
            self._metrics.failures.inc()
            raise

    def _warn(self, exc: Exception) -> None:
        now = monotonic()
        if now >= self._next_warning:
            self._next_warning = now + WARNING_INTERVAL_SECONDS
            log.warning(
                "payload sink %s failed; events are dropped and counted",
                self.name,
                extra={"fields": {"sink": self.name, "error": f"{type(exc).__name__}: {exc}"}},
            )
