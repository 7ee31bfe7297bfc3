"""A keyed work queue: one reconcile per key at a time, bursts coalesced, delayed requeue.

Limits: in-memory only (a restarted operator relists everything anyway); a pass that
ignores cancellation cannot be stopped, only reported (:meth:`WorkQueue.stalled`, which
the operator's /healthz turns into a failed liveness probe so the pod is restarted).

Events arrive from several watches (the InferenceService and each owned kind); each
only says "look at this key again". The queue guarantees that

* a key is never reconciled concurrently with itself, and events arriving during a
  successful pass cause exactly one more pass;
* a pass that raises or runs longer than :data:`PASS_TIMEOUT_SECONDS` (it is cancelled,
  i.e. abandoned) is retried with exponential backoff. While a key backs off, events
  for it — including those that arrived during the failing pass, which are mostly the
  echoes of its own writes — are folded into the retry instead of starting a pass at
  once, so a failing key cannot spin;
* :meth:`WorkQueue.forget` (the object was deleted) wins over a pass still running:
  that pass's requeue or retry is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple

logger = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, name) of an InferenceService."""

Worker = Callable[[Key], Awaitable[float | None]]
"""Reconciles one key; returns seconds until it wants another pass, or None."""

PASS_TIMEOUT_SECONDS = 120.0
"""A pass still running after this long is abandoned and retried with backoff."""


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Seconds before retry number `failures` (1, 2, ...): base, 2*base, ... up to cap."""
    return float(min(cap, base * 2.0 ** (failures - 1)))


class Outcome(NamedTuple):
    """How one pass ended: seconds until the next pass (or None), and whether it failed."""

    delay: float | None
    failed: bool


@dataclass
class WorkQueue:
    """Runs `worker` for enqueued keys with per-key serialisation, timeouts and backoff."""

    worker: Worker
    concurrency: int = 4
    base_backoff: float = 0.5
    max_backoff: float = 60.0
    pass_timeout: float = PASS_TIMEOUT_SECONDS
    clock: Callable[[], float] = time.monotonic
    """Clock of :meth:`stalled` (monotonic seconds)."""
    _dirty: set[Key] = field(default_factory=set)
    _running: set[Key] = field(default_factory=set)
    _failures: dict[Key, int] = field(default_factory=dict)
    _backing_off: set[Key] = field(default_factory=set)
    _forgotten: set[Key] = field(default_factory=set)
    _started: dict[Key, float] = field(default_factory=dict)
    _timers: dict[Key, tuple[asyncio.TimerHandle, float]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _slots: asyncio.Semaphore | None = None

    def add(self, key: Key) -> None:
        """Ask for a reconcile of `key` as soon as possible (after its backoff if failing)."""
        self._forgotten.discard(key)
        if key in self._backing_off:
            return
        self._cancel_timer(key)
        if key in self._running:
            self._dirty.add(key)
            return
        self._running.add(key)
        task = asyncio.get_running_loop().create_task(self._run(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def add_after(self, key: Key, delay: float) -> None:
        """Ask for a reconcile of `key` in `delay` seconds (an earlier request wins)."""
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        when = loop.time() + delay
        if existing is not None and existing[0].when() <= when:
            return
        self._cancel_timer(key)
        self._timers[key] = (loop.call_at(when, self._fire, key), delay)

    def scheduled(self, key: Key) -> float | None:
        """The delay of the pending timed pass of `key` as it was requested, if any."""
        timer = self._timers.get(key)
        return None if timer is None else timer[1]

    def forget(self, key: Key) -> None:
        """Drop pending timers, backoff and failure counts of a deleted key.

        A pass of `key` that is running now ends without scheduling anything.
        """
        self._cancel_timer(key)
        self._failures.pop(key, None)
        self._dirty.discard(key)
        self._backing_off.discard(key)
        if key in self._running:
            self._forgotten.add(key)

    def stalled(self, after: float | None = None) -> dict[Key, float]:
        """Keys whose pass has held a slot for more than `after` seconds (default: twice
        the pass timeout), with that duration: a pass the timeout could not stop."""
        limit = 2 * self.pass_timeout if after is None else after
        now = self.clock()
        return {k: now - t for k, t in self._started.items() if now - t > limit}

    def running(self) -> int:
        """How many passes hold a slot now."""
        return len(self._started)

    def _cancel_timer(self, key: Key) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[0].cancel()

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self._backing_off.discard(key)
        self.add(key)

    async def _run(self, key: Key) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        try:
            while True:
                self._dirty.discard(key)
                async with self._slots:
                    self._started[key] = self.clock()
                    try:
                        outcome = await self._attempt(key)
                    finally:
                        del self._started[key]
                if outcome.failed or key not in self._dirty:
                    break
        finally:
            self._running.discard(key)
        if key in self._forgotten:
            self._forgotten.discard(key)
            self._failures.pop(key, None)
            return
        if outcome.failed:
            self._dirty.discard(key)
            self._backing_off.add(key)
            self._cancel_timer(key)
        if outcome.delay is not None:
            self.add_after(key, outcome.delay)

    async def _attempt(self, key: Key) -> Outcome:
        deadline = asyncio.timeout(self.pass_timeout)
        try:
            async with deadline:
                delay = await self.worker(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            backoff = backoff_delay(failures, self.base_backoff, self.max_backoff)
            if deadline.expired():
                logger.error(
                    "Reconcile of %s/%s overran %.0fs and was abandoned; retrying in %.1fs",
                    *key,
                    self.pass_timeout,
                    backoff,
                )
            else:
                logger.exception("Reconcile of %s/%s failed; retrying in %.1fs", *key, backoff)
            return Outcome(backoff, failed=True)
        self._failures.pop(key, None)
        return Outcome(delay, failed=False)

    async def join(self) -> None:
        """Wait until no pass is running or about to run (timers may still be pending)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Cancel timers and wait for running passes to end."""
        for timer, _ in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await self.join()
