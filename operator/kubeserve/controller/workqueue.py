"""A keyed work queue: one reconcile per key at a time, bursts coalesced, delayed requeue.

Events arrive from several watches (the InferenceService and each owned kind); each
only says "look at this key again". The queue guarantees that a key is never
reconciled concurrently with itself, that events arriving during a pass cause exactly
one more pass, and that a failing key is retried with exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, name) of an InferenceService."""

Worker = Callable[[Key], Awaitable[float | None]]
"""Reconciles one key; returns seconds until it wants another pass, or None."""


@dataclass
class WorkQueue:
    """Runs `worker` for enqueued keys with per-key serialisation and backoff."""

    worker: Worker
    concurrency: int = 4
    base_backoff: float = 0.5
    max_backoff: float = 60.0
    _dirty: set[Key] = field(default_factory=set)
    _running: set[Key] = field(default_factory=set)
    _failures: dict[Key, int] = field(default_factory=dict)
    _timers: dict[Key, asyncio.TimerHandle] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _slots: asyncio.Semaphore | None = None

    def add(self, key: Key) -> None:
        """Ask for a reconcile of `key` as soon as possible."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
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
        if existing is not None and existing.when() <= when:
            return
        if existing is not None:
            existing.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def forget(self, key: Key) -> None:
        """Drop pending timers and failure counts of a deleted key."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)
        self._dirty.discard(key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def _run(self, key: Key) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        try:
            while True:
                self._dirty.discard(key)
                async with self._slots:
                    delay = await self._attempt(key)
                if key not in self._dirty:
                    break
        finally:
            self._running.discard(key)
        if delay is not None:
            self.add_after(key, delay)

    async def _attempt(self, key: Key) -> float | None:
        try:
            delay: float | None = await self.worker(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            backoff = min(self.max_backoff, self.base_backoff * 2.0 ** (failures - 1))
            logger.exception("Reconcile of %s/%s failed; retrying in %.1fs", *key, backoff)
            return backoff
        self._failures.pop(key, None)
        return delay

    async def close(self) -> None:
        """Cancel timers and wait for running passes to end."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
