"""What the schedulers share: the runner they call, the timings they report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np

Feed = dict[str, np.ndarray[Any, Any]]
Runner = Callable[[Feed], Feed]
BatchObserver = Callable[[int, float], None]
"""Called from the inference thread with (batch rows, inference seconds) per model run."""


class Timing(NamedTuple):
    """Where one request's time went inside the scheduler (a tuple: cheap to make)."""

    queue_s: float
    inference_s: float
    batch_size: int


class Scheduler(Protocol):
    """Runs feeds through the model, off the event loop."""

    @property
    def pending(self) -> int:
        """Requests waiting or running."""
        ...

    async def submit(self, feed: Feed) -> tuple[Feed, Timing]:
        """Run one request's feed and return its outputs and timing."""
        ...

    async def close(self, timeout_s: float) -> None:
        """Let pending work finish for up to ``timeout_s`` seconds, then stop."""
        ...


def feed_size(feed: Feed) -> tuple[int | None, int]:
    """Return a feed's (rows, elements).

    Rows: the axis-0 size all inputs share, None when they do not (cannot be batched).
    Elements: the number of values, which a model call's cost scales with.
    """
    rows: int | None = None
    batchable = True
    elements = 0
    for array in feed.values():
        elements += array.size
        if array.ndim == 0:
            batchable = False
        elif rows is None:
            rows = int(array.shape[0])
        elif array.shape[0] != rows:
            batchable = False
    return (rows if batchable else None), elements


async def drained(pending: Callable[[], int], timeout_s: float) -> bool:
    """Wait until ``pending()`` is 0 or ``timeout_s`` has passed; return whether it is 0.

    Polls every 10 ms: it runs once, at shutdown, and the counters it watches change
    in several places.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while pending() and loop.time() < deadline:  # noqa: ASYNC110 - see the docstring
        await asyncio.sleep(0.01)
    return not pending()
