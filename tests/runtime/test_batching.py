"""The schedulers in-process with real threads, and batching/overload in a real server."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from kubeserve_runtime.batching import AdaptiveBatcher, DirectScheduler
from kubeserve_runtime.errors import InvalidInput, NotReady, Overloaded
from kubeserve_runtime.testing import RuntimeProcess

Feed = dict[str, np.ndarray[Any, Any]]


def _scheduler(
    batching: bool,
    model: Callable[[Feed], Feed],
    pool: ThreadPoolExecutor,
    max_queue: int = 100,
    inline_max_s: float = 0.0,
) -> AdaptiveBatcher | DirectScheduler:
    """A batcher of one worker (batches of one: every request its own call) or a direct
    scheduler, both with ``max_queue`` and ``inline_max_s``."""
    if not batching:
        return DirectScheduler(model, pool, max_queue, lambda *_: None, inline_max_s=inline_max_s)
    return AdaptiveBatcher(
        model,
        pool,
        max_batch_size=1,
        max_latency_s=0.001,
        max_queue=max_queue,
        workers=1,
        observe=lambda *_: None,
        inline_max_s=inline_max_s,
    )


def _double(feed: Feed) -> Feed:
    """A model: doubles x; refuses negative values like a model would."""
    x = feed["x"]
    if (x < 0).any():
        raise InvalidInput("negative")
    return {"y": x * 2}


def test_batcher_merges_concurrent_requests_and_splits_results() -> None:
    """Ten 1-row requests run as batches of at most 4 and each gets its own row back."""
    sizes: list[int] = []

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            batcher = AdaptiveBatcher(
                _double,
                pool,
                max_batch_size=4,
                max_latency_s=0.05,
                max_queue=100,
                workers=1,
                observe=lambda rows, _: sizes.append(rows),
            )
            results = await asyncio.gather(
                *(batcher.submit({"x": np.array([[float(i)]])}) for i in range(10))
            )
            await batcher.close(60)
            return results

    results = asyncio.run(scenario())
    for i, (out, timing) in enumerate(results):
        assert out["y"].tolist() == [[2.0 * i]]
        assert timing.queue_s >= 0
    assert sum(sizes) == 10
    assert max(sizes) <= 4
    assert len(sizes) < 10


def test_batcher_isolates_a_failing_request() -> None:
    """One bad request in a batch fails alone; its neighbours still succeed."""

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            batcher = AdaptiveBatcher(
                _double,
                pool,
                max_batch_size=8,
                max_latency_s=0.05,
                max_queue=100,
                workers=1,
                observe=lambda *_: None,
            )
            values = [1.0, -1.0, 3.0]
            results = await asyncio.gather(
                *(batcher.submit({"x": np.array([[v]])}) for v in values),
                return_exceptions=True,
            )
            await batcher.close(60)
            return results

    ok1, bad, ok3 = asyncio.run(scenario())
    assert isinstance(bad, InvalidInput)
    assert not isinstance(ok1, BaseException)
    assert not isinstance(ok3, BaseException)
    assert ok1[0]["y"].tolist() == [[2.0]]
    assert ok3[0]["y"].tolist() == [[6.0]]


def test_batcher_dispatches_a_lone_request_at_once() -> None:
    """With nothing else queued or running, a request does not wait out max_latency."""
    sizes: list[int] = []

    async def scenario() -> Any:
        with ThreadPoolExecutor(1) as pool:
            batcher = AdaptiveBatcher(
                _double,
                pool,
                max_batch_size=32,
                max_latency_s=3600.0,
                max_queue=100,
                workers=2,
                observe=lambda rows, _: sizes.append(rows),
            )
            first = await asyncio.wait_for(batcher.submit({"x": np.array([[1.0]])}), 60)
            second = await asyncio.wait_for(batcher.submit({"x": np.array([[2.0]])}), 60)
            await batcher.close(60)
            return first, second

    first, second = asyncio.run(scenario())
    assert first[0]["y"].tolist() == [[2.0]]
    assert second[0]["y"].tolist() == [[4.0]]
    assert sizes == [1, 1]


def test_batcher_waits_for_more_rows_while_another_batch_runs() -> None:
    """Under load (a batch in flight) the collector keeps filling the next batch."""
    sizes: list[int] = []
    started = threading.Event()
    release = threading.Event()

    def gated(feed: Feed) -> Feed:
        if feed["x"][0, 0] < 0:
            started.set()
            release.wait(30)
        return {"y": feed["x"] * 2}

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(2) as pool:
            batcher = AdaptiveBatcher(
                gated,
                pool,
                max_batch_size=4,
                max_latency_s=3600.0,
                max_queue=100,
                workers=2,
                observe=lambda rows, _: sizes.append(rows),
            )
            blocker = asyncio.ensure_future(batcher.submit({"x": np.array([[-1.0]])}))
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, started.wait, 30)
            early = [
                asyncio.ensure_future(batcher.submit({"x": np.array([[float(i)]])}))
                for i in range(3)
            ]
            for _ in range(5):
                await asyncio.sleep(0)
            late = asyncio.ensure_future(batcher.submit({"x": np.array([[3.0]])}))
            done = await asyncio.wait_for(asyncio.gather(*early, late), 60)
            release.set()
            await blocker
            await batcher.close(60)
            return list(done)

    results = asyncio.run(scenario())
    assert [out["y"].tolist() for out, _ in results] == [[[0.0]], [[2.0]], [[4.0]], [[6.0]]]
    assert sizes == [4, 1]


def test_cheap_calls_run_inline_and_slow_ones_in_the_pool() -> None:
    """After warm-up, a microsecond model runs on the loop's thread; a slow one never does."""
    threads: dict[str, set[int]] = {"fast": set(), "slow": set()}

    def fast(feed: Feed) -> Feed:
        threads["fast"].add(threading.get_ident())
        return feed

    def slow(feed: Feed) -> Feed:
        threads["slow"].add(threading.get_ident())
        release = threading.Event()
        release.wait(0.01)
        return feed

    async def scenario() -> int:
        with ThreadPoolExecutor(1) as pool:
            for model in (fast, slow):
                scheduler = DirectScheduler(model, pool, 10, lambda *_: None, inline_max_s=0.005)
                for _ in range(20):
                    await scheduler.submit({"x": np.zeros((1, 1))})
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert loop_thread in threads["fast"]
    assert loop_thread not in threads["slow"]


def test_idle_batcher_runs_a_cheap_lone_request_inline_yet_merges_concurrent_ones() -> None:
    """A cheap request alone runs on the loop at once; a burst still forms batches."""
    sizes: list[int] = []
    threads: set[int] = set()

    def fast(feed: Feed) -> Feed:
        threads.add(threading.get_ident())
        return _double(feed)

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            batcher = AdaptiveBatcher(
                fast,
                pool,
                max_batch_size=8,
                max_latency_s=0.05,
                max_queue=100,
                workers=1,
                observe=lambda rows, _: sizes.append(rows),
                inline_max_s=0.005,
            )
            for i in range(20):  # sequential: warms placement, each finds the batcher idle
                out, _ = await batcher.submit({"x": np.array([[float(i)]])})
                assert out["y"].tolist() == [[2.0 * i]]
            sizes.clear()
            burst = await asyncio.gather(
                *(batcher.submit({"x": np.array([[float(i)]])}) for i in range(16))
            )
            with pytest.raises(InvalidInput):
                await batcher.submit({"x": np.array([[-1.0]])})
            await batcher.close(60)
            return burst

    burst = asyncio.run(scenario())
    assert threading.get_ident() in threads
    for i, (out, _) in enumerate(burst):
        assert out["y"].tolist() == [[2.0 * i]]
    assert sum(sizes) == 16
    assert max(sizes) > 1


@pytest.mark.parametrize("batching", [True, False])
def test_full_queue_raises_overloaded(batching: bool) -> None:
    """Beyond max_queue waiting requests, submit refuses at once."""
    release = threading.Event()

    def blocked(feed: Feed) -> Feed:
        release.wait(5)
        return feed

    async def scenario() -> tuple[int, int]:
        with ThreadPoolExecutor(1) as pool:
            scheduler = _scheduler(batching, blocked, pool, max_queue=2)
            tasks = [
                asyncio.ensure_future(scheduler.submit({"x": np.zeros((1, 1))})) for _ in range(6)
            ]
            await asyncio.sleep(0.1)
            release.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            await scheduler.close(60)
            refused = sum(isinstance(r, Overloaded) for r in results)
            return refused, len(results) - refused

    refused, served = asyncio.run(scenario())
    assert refused >= 2
    assert served >= 2


SLOW_HANDLER = textwrap.dedent(
    """
    import time

    class Handler:
        batchable = False

        def predict(self, feed):
            time.sleep(0.3)
            return feed["x"]
    """
)


def test_server_overload_is_503_with_retry_after(tmp_path: Path) -> None:
    """A full queue answers 503 + Retry-After; the server keeps serving afterwards."""
    (tmp_path / "handler.py").write_text(SLOW_HANDLER)
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.post(url, json=body) for _ in range(6)))

    with RuntimeProcess(tmp_path, "slow", "--max-queue", "1", grpc=False) as server:
        responses = asyncio.run(burst(f"{server.url}/v2/models/slow/infer"))
        codes = sorted(r.status_code for r in responses)
        assert codes.count(200) >= 1
        assert 503 in codes
        refused = next(r for r in responses if r.status_code == 503)
        assert refused.headers["retry-after"] == "1"
        assert "queue is full" in refused.json()["error"]
        again = httpx.post(f"{server.url}/v2/models/slow/infer", json=body, timeout=30)
        assert again.status_code == 200


def test_server_batches_concurrent_requests(sklearn_dir: Path) -> None:
    """With --max-batch-size, concurrent requests share model calls (batch size > 1)."""
    row = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5, 3, 1, 0]}]}

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.post(url, json=row) for _ in range(32)))

    args = ("--max-batch-size", "16", "--max-latency-ms", "50")
    with RuntimeProcess(sklearn_dir, "iris", *args, grpc=False) as server:
        responses = asyncio.run(burst(f"{server.url}/v2/models/iris/infer"))
        assert all(r.status_code == 200 for r in responses)
        assert all(r.json()["outputs"][0]["data"] == [0] for r in responses)
        metrics = httpx.get(server.metrics_url).text
        count = _sample(metrics, "kubeserve_batch_size_count")
        total = _sample(metrics, "kubeserve_batch_size_sum")
        assert total == 32
        assert count < 32


def _sample(text: str, name: str) -> float:
    """Return the value of the first sample named ``name`` in a Prometheus scrape."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in scrape")


BLOCK = -1000.0


class _Gate:
    """A model wrapper that blocks on a request whose first value is ``BLOCK`` (the
    blocker), so the requests behind it queue up and form one batch; counts the calls
    the wrapped model gets for everything else."""

    def __init__(self, model: Callable[[Feed], Feed]) -> None:
        self.model = model
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls: list[int] = []

    def __call__(self, feed: Feed) -> Feed:
        if feed["x"][0, 0] == BLOCK:
            self.started.set()
            self.release.wait(60)
            return {"y": feed["x"]}
        self.calls.append(len(feed["x"]))
        return self.model(feed)


async def _batch_behind_blocker(
    batcher: AdaptiveBatcher, gate: _Gate, feeds: list[Feed]
) -> list[Any]:
    """Submit ``feeds`` while a blocker holds one worker; return their outcomes.

    With ``max_batch_size == len(feeds)`` and a long max_latency, the collector waits
    (a batch is in flight) until all of them are in one batch.
    """
    blocker = asyncio.ensure_future(batcher.submit({"x": np.array([[BLOCK]])}))
    await asyncio.get_running_loop().run_in_executor(None, gate.started.wait, 60)
    gate.started.clear()
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.submit(f) for f in feeds), return_exceptions=True), 60
    )
    gate.release.set()
    await blocker
    gate.release.clear()
    return list(results)


def _batcher(
    pool: ThreadPoolExecutor,
    gate: _Gate,
    max_batch: int,
    workers: int = 2,
    max_latency_s: float = 3600.0,
) -> AdaptiveBatcher:
    """A batcher for the gate: by default two workers (one for the blocker) and a latency
    that never ends."""
    return AdaptiveBatcher(
        gate,
        pool,
        max_batch_size=max_batch,
        max_latency_s=max_latency_s,
        max_queue=100,
        workers=workers,
        observe=lambda *_: None,
    )


def test_one_bad_request_in_a_merged_batch_costs_a_few_calls_not_one_per_neighbour() -> None:
    """A batch of 16 with one bad request: halving finds it in 9 model calls, not 17."""
    gate = _Gate(_double)

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(2) as pool:
            batcher = _batcher(pool, gate, 16)
            feeds = [{"x": np.array([[-5.0 if i == 5 else float(i)]])} for i in range(16)]
            results = await _batch_behind_blocker(batcher, gate, feeds)
            await batcher.close(60)
            return results

    results = asyncio.run(scenario())
    assert isinstance(results[5], InvalidInput)
    for i, result in enumerate(results):
        if i != 5:
            assert result[0]["y"].tolist() == [[2.0 * i]]
    # merged 16 (fails) -> halves 8+8 -> 4+4 -> 2+2 -> the failing pair one by one
    assert len(gate.calls) == 9
    assert gate.calls[0] == 16


def test_a_model_that_drops_the_batch_dimension_is_run_alone_from_then_on() -> None:
    """After one merged call whose output lost axis 0, batches are never merged again."""
    gate = _Gate(lambda feed: {"y": feed["x"].sum()})

    async def scenario() -> list[list[Any]]:
        with ThreadPoolExecutor(2) as pool:
            batcher = _batcher(pool, gate, 4)
            rounds = []
            for _ in range(2):
                feeds = [{"x": np.array([[float(i)]])} for i in range(1, 5)]
                rounds.append(await _batch_behind_blocker(batcher, gate, feeds))
            await batcher.close(60)
            return rounds

    first, second = asyncio.run(scenario())
    for results in (first, second):
        assert [r[0]["y"].tolist() for r in results] == [1.0, 2.0, 3.0, 4.0]
    assert gate.calls == [4, 1, 1, 1, 1, 1, 1, 1, 1]  # one merged try, then alone


def test_a_dead_collector_answers_what_it_held_and_a_new_one_serves_the_queue() -> None:
    """The collector task dies (cancelled, as a bug or a stray cancel would do it).

    The request it held gets a retryable 503 instead of hanging; requests queued behind
    it, and new ones, are still served.
    """
    gate = _Gate(_double)

    async def scenario() -> tuple[Any, list[Any]]:
        with ThreadPoolExecutor(2) as pool:
            batcher = _batcher(pool, gate, 8)
            blocker = asyncio.ensure_future(batcher.submit({"x": np.array([[BLOCK]])}))
            await asyncio.get_running_loop().run_in_executor(None, gate.started.wait, 60)
            held = asyncio.ensure_future(batcher.submit({"x": np.array([[1.0]])}))
            for _ in range(5):  # the collector takes it and waits for more rows
                await asyncio.sleep(0)
            collector = batcher._collector
            assert collector is not None
            collector.cancel()
            (held_error,) = await asyncio.wait_for(asyncio.gather(held, return_exceptions=True), 60)
            gate.release.set()
            await blocker
            later = await asyncio.wait_for(
                asyncio.gather(*(batcher.submit({"x": np.array([[float(i)]])}) for i in range(3))),
                60,
            )
            await batcher.close(60)
            return held_error, list(later)

    held_error, later = asyncio.run(scenario())
    assert isinstance(held_error, NotReady)
    assert [out["y"].tolist() for out, _ in later] == [[[0.0]], [[2.0]], [[4.0]]]


def test_requests_queued_when_the_collector_dies_are_still_served() -> None:
    """With the only worker busy, requests wait in the queue; the collector dies; a new
    one starts at once and serves them when the worker frees up."""
    gate = _Gate(_double)

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            batcher = _batcher(pool, gate, 8, workers=1, max_latency_s=0.01)
            blocker = asyncio.ensure_future(batcher.submit({"x": np.array([[BLOCK]])}))
            await asyncio.get_running_loop().run_in_executor(None, gate.started.wait, 60)
            queued = [
                asyncio.ensure_future(batcher.submit({"x": np.array([[float(i)]])}))
                for i in range(3)
            ]
            for _ in range(5):
                await asyncio.sleep(0)
            collector = batcher._collector
            assert collector is not None
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)
            gate.release.set()
            await blocker
            results = await asyncio.wait_for(asyncio.gather(*queued), 60)
            await batcher.close(60)
            return list(results)

    results = asyncio.run(scenario())
    assert [out["y"].tolist() for out, _ in results] == [[[0.0]], [[2.0]], [[4.0]]]


@pytest.mark.parametrize("batching", [True, False])
def test_close_gives_up_after_its_timeout_and_answers_the_queue(batching: bool) -> None:
    """A model call that never ends cannot hold shutdown: close returns after its
    timeout, and requests still queued get a 503 instead of waiting forever."""
    gate = _Gate(_double)

    async def scenario() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            scheduler = _scheduler(batching, gate, pool)
            blocker = asyncio.ensure_future(scheduler.submit({"x": np.array([[BLOCK]])}))
            await asyncio.get_running_loop().run_in_executor(None, gate.started.wait, 60)
            queued = asyncio.ensure_future(scheduler.submit({"x": np.array([[1.0]])}))
            await asyncio.sleep(0)
            await asyncio.wait_for(scheduler.close(0.05), 60)
            closed = scheduler.pending
            gate.release.set()
            outcomes = await asyncio.gather(blocker, queued, return_exceptions=True)
            return [closed, *outcomes]

    closed, blocker, queued = asyncio.run(scenario())
    assert closed >= 1  # close returned while the blocked call was still pending
    assert blocker[0]["y"].tolist() == [[BLOCK]]
    if batching:
        assert isinstance(queued, NotReady)
    else:
        assert queued[0]["y"].tolist() == [[2.0]]


@pytest.mark.parametrize("batching", [True, False])
def test_a_one_row_request_with_a_huge_second_dimension_runs_in_the_pool(batching: bool) -> None:
    """After warm-up on [1, 4] rows a cheap model runs inline, but a [1, 1_000_000]
    request is a million-value call: it goes to the pool, off the event loop."""
    threads: dict[int, set[int]] = {}

    def model(feed: Feed) -> Feed:
        threads.setdefault(feed["x"].size, set()).add(threading.get_ident())
        return feed

    async def scenario() -> int:
        with ThreadPoolExecutor(1) as pool:
            scheduler = _scheduler(batching, model, pool, inline_max_s=0.005)
            for _ in range(20):
                await scheduler.submit({"x": np.zeros((1, 4))})
            await scheduler.submit({"x": np.zeros((1, 1_000_000))})
            await scheduler.close(60)
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert loop_thread in threads[4]
    assert loop_thread not in threads[1_000_000]
