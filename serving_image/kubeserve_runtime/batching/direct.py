"""Direct dispatch: each request runs alone in the inference thread pool.

Used when batching is off (``max_batch_size`` 1) or the model opts out. A counter bounds
requests waiting for a thread; beyond ``max_queue`` the request is refused at once.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from time import perf_counter

from kubeserve_runtime.batching.types import BatchObserver, Feed, Runner, Timing, batch_rows
from kubeserve_runtime.errors import Overloaded


class DirectScheduler:
    """Runs every request on its own in the executor."""

    def __init__(
        self, run: Runner, executor: Executor, max_queue: int, observe: BatchObserver
    ) -> None:
        self._run = run
        self._executor = executor
        self._max_queue = max_queue
        self._observe = observe
        self._pending = 0

    @property
    def pending(self) -> int:
        """Requests waiting or running."""
        return self._pending

    def _timed(self, feed: Feed) -> tuple[Feed, float, float]:
        """Run the model in the worker thread and time it."""
        started = perf_counter()
        out = self._run(feed)
        ended = perf_counter()
        self._observe(batch_rows(feed) or 1, ended - started)
        return out, started, ended

    async def submit(self, feed: Feed) -> tuple[Feed, Timing]:
        """Run one feed, refusing when ``max_queue`` requests already wait."""
        if self._pending >= self._max_queue:
            raise Overloaded(f"inference queue is full ({self._max_queue} waiting); retry later")
        self._pending += 1
        try:
            queued = perf_counter()
            loop = asyncio.get_running_loop()
            out, started, ended = await loop.run_in_executor(self._executor, self._timed, feed)
        finally:
            self._pending -= 1
        return out, Timing(started - queued, ended - started, batch_rows(feed) or 1)

    async def close(self) -> None:
        """Nothing to stop: the executor is owned by the caller."""
