"""Adaptive batching: merge concurrent requests into one model call.

A collector task takes the oldest request and every request already queued behind it.
If no batch is running, it dispatches that at once: a lone request never waits for
company that is not coming. Only while another batch is in flight (there is load) does
it keep waiting for more, until the batch holds ``max_batch_size`` rows or
``max_latency`` has passed since the oldest request arrived (``time.perf_counter``, a
monotonic clock). At most ``workers`` batches run at a time; while they run, new
requests pile up, so batches grow with load and stay at one row when idle - that is the
adaptive part. Batches that ``Placement`` judges cheap run inline on the event loop;
a lone request that finds the batcher idle (nothing queued, no batch running) and is
judged cheap yields once, so that requests which arrived with it can queue up, and if
the batcher is still idle it runs inline at once, with no future, queue hop or task: it
could only have formed a batch of one. If anything queued meanwhile it joins the queue,
so batches still form under load.

Requests whose inputs differ in names, dtypes or trailing shapes run in separate groups
of the same dispatch; ``merge`` holds the merging, splitting and the search for the bad
request of a failing group. A model whose outputs lose the batch dimension is run one
request at a time from then on (logged once).

Failure handling: the queue is bounded (a full queue raises Overloaded, 503 +
Retry-After). If the collector task dies, the requests it held get a 503 and a new
collector starts at once, so queued and later requests are still served. ``close``
waits for pending work for at most its timeout, then answers what is still queued
with 503.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from kubeserve_runtime.batching.merge import BatchDimensionLost, isolate, merge, signature, split
from kubeserve_runtime.batching.placement import Placement
from kubeserve_runtime.batching.types import BatchObserver, Feed, Runner, Timing, drained, feed_size
from kubeserve_runtime.errors import NotReady, Overloaded

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Item:
    """One queued request."""

    feed: Feed
    rows: int | None
    elements: int
    future: asyncio.Future[tuple[Feed, Timing]] | None
    enqueued: float = field(default_factory=perf_counter)

    @property
    def size(self) -> int:
        """Rows this request adds to a batch (1 when it cannot be batched)."""
        return self.rows or 1


_Result = tuple[Feed, Timing]
_Outcome = _Result | Exception


class AdaptiveBatcher:
    """Collects requests into batches and runs them in the executor."""

    def __init__(
        self,
        run: Runner,
        executor: Executor,
        *,
        max_batch_size: int,
        max_latency_s: float,
        max_queue: int,
        workers: int,
        observe: BatchObserver,
        inline_max_s: float = 0.0,
    ) -> None:
        self._run = run
        self._executor = executor
        self._max_batch = max_batch_size
        self._max_latency = max_latency_s
        self._max_queue = max_queue
        self._observe = observe
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=max_queue)
        self._slots = asyncio.Semaphore(workers)
        self._running: set[asyncio.Task[None]] = set()
        self._collector: asyncio.Task[None] | None = None
        self._held: list[_Item] = []  # taken from the queue by the collector, not dispatched
        self._in_batches = 0
        self._lone = 0
        self._merging = True
        self._closing = False
        self.placement = Placement(inline_max_s)

    @property
    def pending(self) -> int:
        """Requests queued, held by the collector or inside a running batch."""
        return self._queue.qsize() + len(self._held) + self._in_batches + self._lone

    async def submit(self, feed: Feed) -> tuple[Feed, Timing]:
        """Queue one feed and wait for its share of a batch."""
        if self._closing:
            raise NotReady("the server is shutting down")
        rows, elements = feed_size(feed)
        if self._idle() and self.placement.inline(elements):
            self._lone += 1
            try:
                await asyncio.sleep(0)  # let requests that arrived with this one queue up
            finally:
                self._lone -= 1
            if self._idle():
                return self._run_idle(_Item(feed, rows, elements, None))
        self._ensure_collector()
        item = _Item(feed, rows, elements, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            raise Overloaded(
                f"inference queue is full ({self._max_queue} waiting); retry later"
            ) from None
        assert item.future is not None
        return await item.future

    def _idle(self) -> bool:
        """Whether nothing is queued, running or waiting to run alone."""
        return not self.pending

    def _run_idle(self, item: _Item) -> tuple[Feed, Timing]:
        """Run a lone request inline: nothing is queued or running, so no batch can form."""
        outcome = self._run_one(item)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    # -- the collector -----------------------------------------------------------------

    def _ensure_collector(self) -> None:
        """Start the collector task unless one is running."""
        if self._collector is None or self._collector.done():
            self._collector = asyncio.create_task(self._collect())
            self._collector.add_done_callback(self._collector_done)

    def _collector_done(self, task: asyncio.Task[None]) -> None:
        """Answer the requests a dead collector held; replace it unless closing.

        It is replaced at once when it failed or requests are queued; otherwise the next
        ``submit`` starts one (a collector cancelled with nothing queued is most likely
        the event loop shutting down).
        """
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error("the batch collector failed; starting a new one", exc_info=error)
        _fail(self._held, NotReady("the batcher restarted; retry the request"))
        self._held.clear()
        if not self._closing and (error is not None or not self._queue.empty()):
            self._ensure_collector()

    async def _collect(self) -> None:
        """Form batches forever (until cancelled by ``close``)."""
        while True:
            await self._slots.acquire()
            try:
                batch = await self._fill()
            except BaseException:
                self._slots.release()
                raise
            self._in_batches += len(batch)
            task = asyncio.create_task(self._dispatch(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _fill(self) -> list[_Item]:
        """Take the next batch from the queue (see the module docstring for when)."""
        held = self._held
        if not held:
            held.append(await self._queue.get())
        rows = held[0].size
        deadline = held[0].enqueued + self._max_latency
        while rows < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                if not self._in_batches:
                    break
                remaining = deadline - perf_counter()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if rows + item.size > self._max_batch:
                batch, held[:] = held[:], [item]  # the item starts the next batch
                return batch
            held.append(item)
            rows += item.size
        batch = held[:]
        held.clear()
        return batch

    async def _dispatch(self, batch: list[_Item]) -> None:
        """Run one batch (inline or in the executor) and resolve its futures."""
        try:
            if self.placement.inline(sum(item.elements for item in batch)):
                outcomes = self._run_batch(batch)
            else:
                loop = asyncio.get_running_loop()
                outcomes = await loop.run_in_executor(self._executor, self._run_batch, batch)
            for item, outcome in zip(batch, outcomes, strict=True):
                assert item.future is not None
                if item.future.done():
                    continue
                if isinstance(outcome, Exception):
                    item.future.set_exception(outcome)
                else:
                    item.future.set_result(outcome)
        except Exception as exc:  # the executor is gone, or a bug here: answer everyone
            _fail(batch, exc)
        finally:
            self._in_batches -= len(batch)
            self._slots.release()

    # -- running batches (in a worker thread, or inline) -------------------------------

    def _run_batch(self, batch: list[_Item]) -> list[_Outcome]:
        """Run each signature group of a batch."""
        groups: dict[Any, list[int]] = {}
        for index, item in enumerate(batch):
            key = signature(item.feed) if item.rows is not None and self._merging else index
            groups.setdefault(key, []).append(index)
        outcomes: list[_Outcome] = [RuntimeError("not run")] * len(batch)
        for indexes in groups.values():
            items = [batch[i] for i in indexes]
            for i, outcome in zip(indexes, self._run_group(items), strict=True):
                outcomes[i] = outcome
        return outcomes

    def _run_group(self, items: list[_Item]) -> list[_Outcome]:
        """Run items of one signature merged, narrowing down failures (``isolate``)."""
        try:
            return isolate(items, self._run_merged, self._run_one)
        except BatchDimensionLost:
            if self._merging:
                self._merging = False
                log.warning(
                    "the model's outputs do not keep the batch dimension; running each "
                    "request alone from now on (set maxBatchSize 1 to skip the batcher)"
                )
            return [self._run_one(item) for item in items]

    def _run_merged(self, items: list[_Item]) -> list[_Result]:
        """One model call on the merged feeds; raises if the model does."""
        sizes = [item.size for item in items]
        elements = sum(item.elements for item in items)
        started = perf_counter()
        try:
            out = self._run(merge([item.feed for item in items]))
        finally:
            ended = perf_counter()
            self.placement.observe(elements, ended - started)
        parts = split(out, sizes)
        total = sum(sizes)
        self._observe(total, ended - started)
        return [
            (part, Timing(started - item.enqueued, ended - started, total))
            for part, item in zip(parts, items, strict=True)
        ]

    def _run_one(self, item: _Item) -> _Outcome:
        """Run a single request, returning its outputs or the exception it raised."""
        started = perf_counter()
        try:
            out = self._run(item.feed)
        except Exception as exc:
            return exc
        finally:
            ended = perf_counter()
            self.placement.observe(item.elements, ended - started)
        self._observe(item.size, ended - started)
        return out, Timing(started - item.enqueued, ended - started, item.size)

    async def close(self, timeout_s: float) -> None:
        """Let pending work finish for up to ``timeout_s``, then stop; the rest gets 503."""
        self._closing = True
        if not await drained(lambda: self.pending, timeout_s):
            log.warning("inference still pending after %ss; stopping anyway", timeout_s)
        if self._collector is not None:
            self._collector.cancel()
            await asyncio.gather(self._collector, return_exceptions=True)
        queued = []
        while not self._queue.empty():
            queued.append(self._queue.get_nowait())
        _fail(queued, NotReady("the server is shutting down"))


def _fail(items: list[_Item], error: Exception) -> None:
    """Answer every unanswered request among ``items`` with ``error``."""
    for item in items:
        if item.future is not None and not item.future.done():
            item.future.set_exception(error)
