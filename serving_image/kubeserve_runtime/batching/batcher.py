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
of the same dispatch. If a merged run
fails, each request is retried alone so one bad request cannot fail its neighbours.
The queue is bounded: a full queue raises Overloaded (503 + Retry-After).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import numpy as np

from kubeserve_runtime.batching.placement import Placement
from kubeserve_runtime.batching.types import BatchObserver, Feed, Runner, Timing, batch_rows
from kubeserve_runtime.errors import Overloaded


@dataclass(slots=True)
class _Item:
    """One queued request."""

    feed: Feed
    rows: int | None
    future: asyncio.Future[tuple[Feed, Timing]] | None
    enqueued: float = field(default_factory=perf_counter)


_Outcome = tuple[Feed, Timing] | BaseException


def _signature(item: _Item) -> tuple[Any, ...]:
    """Return the key under which requests may be concatenated."""
    if item.rows is None:
        return (id(item),)
    return tuple((n, a.dtype.str, a.shape[1:]) for n, a in item.feed.items())


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
        self._in_batches = 0
        self._lone = 0
        self.placement = Placement(inline_max_s)

    @property
    def pending(self) -> int:
        """Requests queued or inside a running batch."""
        return self._queue.qsize() + self._in_batches + self._lone

    async def submit(self, feed: Feed) -> tuple[Feed, Timing]:
        """Queue one feed and wait for its share of a batch."""
        rows = batch_rows(feed)
        if self._idle() and self.placement.inline(rows or 1):
            self._lone += 1
            try:
                await asyncio.sleep(0)  # let requests that arrived with this one queue up
            finally:
                self._lone -= 1
            if self._idle():
                return self._run_idle(feed, rows)
        if self._collector is None:
            self._collector = asyncio.create_task(self._collect())
        loop = asyncio.get_running_loop()
        item = _Item(feed, rows, loop.create_future())
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
        return not self._in_batches and not self._lone and self._queue.empty()

    def _run_idle(self, feed: Feed, rows: int | None) -> tuple[Feed, Timing]:
        """Run a lone request inline: nothing is queued or running, so no batch can form."""
        item = _Item(feed, rows, None)
        outcome = self._run_one(item)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def _collect(self) -> None:
        """Form batches forever (until cancelled by ``close``)."""
        carry: _Item | None = None
        while True:
            await self._slots.acquire()
            first = carry if carry is not None else await self._queue.get()
            carry = None
            batch = [first]
            rows = first.rows or 1
            deadline = first.enqueued + self._max_latency
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
                if rows + (item.rows or 1) > self._max_batch:
                    carry = item
                    break
                batch.append(item)
                rows += item.rows or 1
            self._in_batches += len(batch)
            task = asyncio.create_task(self._dispatch(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _dispatch(self, batch: list[_Item]) -> None:
        """Run one batch in the executor and resolve its futures."""
        try:
            rows = sum(item.rows or 1 for item in batch)
            if self.placement.inline(rows):
                outcomes = self._run_batch(batch)
            else:
                loop = asyncio.get_running_loop()
                outcomes = await loop.run_in_executor(self._executor, self._run_batch, batch)
            for item, outcome in zip(batch, outcomes, strict=True):
                assert item.future is not None
                if item.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    item.future.set_exception(outcome)
                else:
                    item.future.set_result(outcome)
        finally:
            self._in_batches -= len(batch)
            self._slots.release()

    def _run_batch(self, batch: list[_Item]) -> list[_Outcome]:
        """Run each signature group of a batch (in the worker thread)."""
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, item in enumerate(batch):
            groups.setdefault(_signature(item), []).append(index)
        outcomes: list[_Outcome] = [RuntimeError("not run")] * len(batch)
        for indexes in groups.values():
            items = [batch[i] for i in indexes]
            for i, outcome in zip(indexes, self._run_group(items), strict=True):
                outcomes[i] = outcome
        return outcomes

    def _run_group(self, items: list[_Item]) -> list[_Outcome]:
        """Run items with one signature as one model call; retry alone on failure."""
        if len(items) == 1:
            return [self._run_one(items[0])]
        started = perf_counter()
        try:
            names = items[0].feed.keys()
            merged = {n: np.concatenate([it.feed[n] for it in items]) for n in names}
            out = self._run(merged)
            ended = perf_counter()
            self.placement.observe(sum(it.rows or 1 for it in items), ended - started)
            sizes = [it.rows or 1 for it in items]
            total = sum(sizes)
            if any(a.ndim == 0 or a.shape[0] != total for a in out.values()):
                raise ValueError("model outputs do not keep the batch dimension")
        except Exception:
            return [self._run_one(it) for it in items]
        self._observe(total, ended - started)
        cuts = np.cumsum(sizes)[:-1]
        parts = {n: np.split(a, cuts) for n, a in out.items()}
        return [
            (
                {n: p[k] for n, p in parts.items()},
                Timing(started - it.enqueued, ended - started, total),
            )
            for k, it in enumerate(items)
        ]

    def _run_one(self, item: _Item) -> _Outcome:
        """Run a single request, returning its outputs or the exception it raised."""
        started = perf_counter()
        try:
            out = self._run(item.feed)
        except Exception as exc:
            self.placement.observe(item.rows or 1, perf_counter() - started)
            return exc
        ended = perf_counter()
        self.placement.observe(item.rows or 1, ended - started)
        self._observe(item.rows or 1, ended - started)
        return out, Timing(started - item.enqueued, ended - started, item.rows or 1)

    async def close(self) -> None:
        """Wait for queued work to finish, then stop the collector."""
        while self.pending:  # noqa: ASYNC110 - polling two counters, rare path
            await asyncio.sleep(0.01)
        if self._collector is not None:
            self._collector.cancel()
            await asyncio.gather(self._collector, return_exceptions=True)
