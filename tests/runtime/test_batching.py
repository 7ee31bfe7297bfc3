"""The schedulers in-process with real threads, and batching/overload in a real server."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from kubeserve_runtime.batching import AdaptiveBatcher, DirectScheduler
from kubeserve_runtime.errors import InvalidInput, Overloaded
from kubeserve_runtime.testing import RuntimeProcess

Feed = dict[str, np.ndarray[Any, Any]]


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
            scheduler: AdaptiveBatcher | DirectScheduler
            if batching:
                scheduler = AdaptiveBatcher(
                    blocked,
                    pool,
                    max_batch_size=1,
                    max_latency_s=0.001,
                    max_queue=2,
                    workers=1,
                    observe=lambda *_: None,
                )
            else:
                scheduler = DirectScheduler(blocked, pool, 2, lambda *_: None)
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
