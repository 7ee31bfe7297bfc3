"""The work queue: per-key serialisation, coalescing, delayed requeue, backoff, timeouts.

Nothing here measures time: scenarios wait on conditions (asyncio events, "the queue is
idle"), and delays are checked as the queue requested them (:meth:`WorkQueue.scheduled`),
with backoffs long enough never to fire during a test unless the test wants them to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import kopf
import pytest

from kubeserve.controller.handlers import queue_health
from kubeserve.controller.workqueue import Key, WorkQueue, backoff_delay

KEY: Key = ("ns", "a")
GUARD = 10.0
"""Failure guard for waits (seconds); reaching it fails the test."""


async def reached(event: asyncio.Event) -> None:
    """Wait until `event` is set (fails after GUARD seconds)."""
    await asyncio.wait_for(event.wait(), GUARD)


def test_backoff_doubles_up_to_the_cap() -> None:
    """Retry n waits base * 2**(n-1), never more than the cap."""
    assert [backoff_delay(n, 0.5, 60) for n in (1, 2, 3, 8, 9, 50)] == [
        0.5,
        1.0,
        2.0,
        60.0,
        60.0,
        60.0,
    ]


def test_events_during_a_pass_cause_exactly_one_more_pass() -> None:
    """Ten events while a pass runs lead to one extra pass, never a concurrent one."""

    async def scenario() -> list[str]:
        log: list[str] = []
        started, gate = asyncio.Event(), asyncio.Event()

        async def worker(key: Key) -> float | None:
            log.append("start")
            if len(log) == 1:
                started.set()
                await gate.wait()
            log.append("end")
            return None

        queue = WorkQueue(worker)
        queue.add(KEY)
        await reached(started)
        for _ in range(10):
            queue.add(KEY)
        gate.set()
        await queue.join()
        await queue.close()
        return log

    assert asyncio.run(scenario()) == ["start", "end", "start", "end"]


def test_failures_back_off_and_success_schedules_the_requested_pass() -> None:
    """Two failures retry after base, then 2*base; the success's delay is the next timer."""

    async def scenario() -> tuple[int, float | None]:
        calls = 0
        third = asyncio.Event()

        async def worker(key: Key) -> float | None:
            nonlocal calls
            calls += 1
            if calls <= 2:
                raise RuntimeError("API server unavailable")
            third.set()
            return 300.0

        queue = WorkQueue(worker, base_backoff=0.001)
        queue.add(KEY)
        await reached(third)
        await queue.join()
        scheduled = queue.scheduled(KEY)
        await queue.close()
        return calls, scheduled

    assert asyncio.run(scenario()) == (3, 300.0)


def test_a_failed_pass_waits_its_backoff_whatever_events_arrive() -> None:
    """Events during a failing pass, and after it, do not start a pass before the backoff."""

    async def scenario() -> tuple[int, list[float | None]]:
        calls = 0
        started, gate = asyncio.Event(), asyncio.Event()

        async def worker(key: Key) -> float | None:
            nonlocal calls
            calls += 1
            started.set()
            await gate.wait()
            raise RuntimeError("conflict")

        queue = WorkQueue(worker, base_backoff=50.0)
        queue.add(KEY)
        await reached(started)
        for _ in range(5):
            queue.add(KEY)  # e.g. the watch echoes of the pass's own writes
        gate.set()
        await queue.join()
        seen = [queue.scheduled(KEY)]
        queue.add(KEY)
        await queue.join()
        seen.append(queue.scheduled(KEY))
        await queue.close()
        return calls, seen

    assert asyncio.run(scenario()) == (1, [50.0, 50.0])


def test_forget_during_a_pass_wins() -> None:
    """A key deleted while its pass runs gets neither its requeue nor a retry."""

    async def scenario(result: Callable[[], Awaitable[float | None]]) -> float | None:
        started, gate = asyncio.Event(), asyncio.Event()

        async def worker(key: Key) -> float | None:
            started.set()
            await gate.wait()
            return await result()

        queue = WorkQueue(worker, base_backoff=50.0)
        queue.add(KEY)
        await reached(started)
        queue.forget(KEY)
        gate.set()
        await queue.join()
        scheduled = queue.scheduled(KEY)
        await queue.close()
        return scheduled

    async def requeue() -> float | None:
        return 300.0

    async def fail() -> float | None:
        raise RuntimeError("the object is gone")

    assert asyncio.run(scenario(requeue)) is None
    assert asyncio.run(scenario(fail)) is None


def test_keys_run_concurrently_and_forget_cancels_timers() -> None:
    """Different keys do not wait for each other; a forgotten key's timer is dropped."""

    async def scenario() -> tuple[float | None, float | None]:
        seen: set[Key] = set()
        both = asyncio.Event()

        async def worker(key: Key) -> float | None:
            seen.add(key)
            if len(seen) == 2:
                both.set()
            await asyncio.wait_for(both.wait(), GUARD)
            return 300.0 if key == ("ns", "gone") else None

        queue = WorkQueue(worker)
        queue.add(KEY)
        queue.add(("ns", "gone"))
        await queue.join()
        before = queue.scheduled(("ns", "gone"))
        queue.forget(("ns", "gone"))
        after = queue.scheduled(("ns", "gone"))
        await queue.close()
        return before, after

    assert asyncio.run(scenario()) == (300.0, None)


def test_a_pass_that_overruns_is_abandoned_and_retried() -> None:
    """A pass stuck on a call that never answers is cancelled; the retry runs."""

    async def scenario() -> list[str]:
        log: list[str] = []
        never, retried = asyncio.Event(), asyncio.Event()

        async def worker(key: Key) -> float | None:
            log.append("start")
            if len(log) == 1:
                try:
                    await never.wait()
                except asyncio.CancelledError:
                    log.append("abandoned")
                    raise
            retried.set()
            return None

        queue = WorkQueue(worker, pass_timeout=0.01, base_backoff=0.001)
        queue.add(KEY)
        await reached(retried)
        await queue.join()
        await queue.close()
        return log

    assert asyncio.run(scenario()) == ["start", "abandoned", "start"]


def test_a_pass_the_timeout_cannot_stop_fails_the_liveness_probe() -> None:
    """A pass that ignores cancellation is reported as stuck once it held its slot too
    long; the probe raises kopf.PermanentError (kopf's /healthz then answers 500)."""

    async def scenario() -> None:
        now = [0.0]
        cancelled, release = asyncio.Event(), asyncio.Event()

        async def worker(key: Key) -> float | None:
            while not release.is_set():
                try:
                    await release.wait()
                except asyncio.CancelledError:
                    cancelled.set()  # swallowed: the pass keeps its slot
            return None

        queue = WorkQueue(worker, pass_timeout=0.01, clock=lambda: now[0])
        queue.add(KEY)
        try:
            await reached(cancelled)
            assert queue_health(queue) == {"running": 1}
            now[0] = 0.03
            assert queue.stalled() == {KEY: 0.03}
            with pytest.raises(kopf.PermanentError, match="ns/a"):
                queue_health(queue)
        finally:
            release.set()
        await queue.join()
        assert queue.stalled() == {}
        assert queue_health(queue) == {"running": 0}
        await queue.close()

    asyncio.run(scenario())
