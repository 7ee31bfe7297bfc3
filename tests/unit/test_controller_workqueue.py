"""The work queue: per-key serialisation, coalescing, delayed requeue and backoff."""

from __future__ import annotations

import asyncio

import pytest

from kubeserve.controller.workqueue import Key, WorkQueue


def test_events_during_a_pass_cause_exactly_one_more_pass() -> None:
    """Ten events while a pass runs lead to one extra pass, never a concurrent one."""

    async def scenario() -> list[str]:
        log: list[str] = []
        gate = asyncio.Event()

        async def worker(key: Key) -> float | None:
            log.append("start")
            if len(log) == 1:
                await gate.wait()
            log.append("end")
            return None

        queue = WorkQueue(worker)
        queue.add(("ns", "a"))
        await asyncio.sleep(0)
        for _ in range(10):
            queue.add(("ns", "a"))
        gate.set()
        await asyncio.sleep(0.05)
        await queue.close()
        return log

    assert asyncio.run(scenario()) == ["start", "end", "start", "end"]


def test_requeue_after_and_backoff() -> None:
    """A returned delay schedules the next pass; a failure retries with backoff."""

    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        times: list[float] = []

        async def worker(key: Key) -> float | None:
            times.append(loop.time())
            if len(times) == 1:
                raise RuntimeError("API server unavailable")
            return 0.05 if len(times) == 2 else None

        queue = WorkQueue(worker, base_backoff=0.05)
        queue.add(("ns", "a"))
        await asyncio.sleep(0.4)
        await queue.close()
        return times

    times = asyncio.run(scenario())
    assert len(times) == 3
    assert times[1] - times[0] == pytest.approx(0.05, abs=0.04)
    assert times[2] - times[1] == pytest.approx(0.05, abs=0.04)


def test_keys_run_concurrently_and_forget_cancels_timers() -> None:
    """Different keys do not wait for each other; a forgotten key's timer never fires."""

    async def scenario() -> set[Key]:
        seen: set[Key] = set()
        both = asyncio.Event()

        async def worker(key: Key) -> float | None:
            seen.add(key)
            if len(seen) == 2:
                both.set()
            await asyncio.wait_for(both.wait(), 1)
            return 0.05 if key == ("ns", "gone") else None

        queue = WorkQueue(worker)
        queue.add(("ns", "a"))
        queue.add(("ns", "gone"))
        await asyncio.sleep(0.02)
        queue.forget(("ns", "gone"))
        seen.clear()
        await asyncio.sleep(0.15)
        await queue.close()
        return seen

    assert asyncio.run(scenario()) == set()
