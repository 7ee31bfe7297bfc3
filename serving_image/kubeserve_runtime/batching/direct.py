"""Direct dispatch: each request runs alone, in the inference thread pool or inline.

Used when batching is off (``max_batch_size`` 1) or the model opts out. A counter bounds
requests waiting for a thread; beyond ``max_queue`` the request is refused at once. A
call that ``Placement`` judges cheap (measured below ``inline_max_s``) runs on the event
loop, skipping the thread hop that would cost more than the call itself.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from time import perf_counter

from kubeserve_runtime.batching.placement import Placement
from kubeserve_runtime.batching.types import BatchObserver, Feed, Runner, Timing, drained, feed_size
from kubeserve_runtime.errors import Overloaded


class DirectScheduler:
    """Runs every request on its own, in the executor or inline when cheap."""

    def __init__(
        self,
        run: Runner,
        executor: Executor,
        max_queue: int,
        observe: BatchObserver,
        *,
        inline_max_s: float = 0.0,
    ) -> None:
        self._run = run
        self._executor = executor
        self._max_queue = max_queue
        self._observe = observe
        self._pending = 0
        self.placement = Placement(inline_max_s)

    @property
    def pending(self) -> int:
        """Requests waiting or running."""
        return self._pending

    def _timed(self, feed: Feed, rows: int, elements: int) -> tuple[Feed, float, float]:
        """Run the model (worker thread or loop) and time it."""
        started = perf_counter()
        try:
            out = self._run(feed)
        finally:
            ended = perf_counter()
            self.placement.observe(elements, ended - started)
        self._observe(rows, ended - started)
        return out, started, ended

    async def submit(self, feed: Feed) -> tuple[Feed, Timing]:
        """Run one feed, refusing when ``max_queue`` requests already wait."""
        if self._pending >= self._max_queue:
            raise Overloaded(f"inference queue is full ({self._max_queue} waiting); retry later")
        size, elements = feed_size(feed)
        rows = size or 1
        queued = perf_counter()
        if self.placement.inline(elements):
            out, started, ended = self._timed(feed, rows, elements)
            return out, Timing(started - queued, ended - started, rows)
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            out, started, ended = await loop.run_in_executor(
                self._executor, self._timed, feed, rows, elements
            )
        finally:
            self._pending -= 1
        return out, Timing(started - queued, ended - started, rows)

    async def close(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for running calls (the executor is the caller's)."""
        await drained(lambda: self._pending, timeout_s)
