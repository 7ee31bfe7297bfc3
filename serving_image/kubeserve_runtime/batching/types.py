"""What the schedulers share: the runner they call, the timings they report."""

from __future__ import annotations

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

    async def close(self) -> None:
        """Stop accepting work once what is pending is done."""
        ...


def batch_rows(feed: Feed) -> int | None:
    """Return the shared axis-0 size of a feed, or None when it cannot be batched."""
    rows: int | None = None
    for array in feed.values():
        if array.ndim == 0:
            return None
        if rows is None:
            rows = int(array.shape[0])
        elif array.shape[0] != rows:
            return None
    return rows
