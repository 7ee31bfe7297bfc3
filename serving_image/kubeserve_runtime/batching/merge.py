"""Merging requests into one model call and splitting the answer back, for the batcher.

Limits: requests merge only when their inputs agree in names, dtypes and trailing
shapes (``signature``), and an answer splits back only when every output keeps the
batch on axis 0; ``split`` raises ``BatchDimensionLost`` otherwise, and the batcher
stops merging for that model (a model that sums or pools over the batch can never be
split, so retrying merges would cost an extra call on every batch).

When a merged call raises, ``isolate`` finds the requests that make it fail without a
call per neighbour: it halves the group and tries each half merged, splitting further
only the halves that fail. If both halves fail, the fault is likely shared by many
requests (or by all, a broken model), so the rest run one by one. One bad request among
N costs about 2*log2(N) extra calls instead of N; a group that fails whole costs N+3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from kubeserve_runtime.batching.types import Feed

T = TypeVar("T")
R = TypeVar("R")


class BatchDimensionLost(Exception):
    """The model's outputs do not keep the merged batch on axis 0."""


def signature(feed: Feed) -> tuple[Any, ...]:
    """Return the key under which feeds may be concatenated."""
    return tuple((n, a.dtype.str, a.shape[1:]) for n, a in feed.items())


def merge(feeds: Sequence[Feed]) -> Feed:
    """Concatenate feeds of one signature along axis 0."""
    return {n: np.concatenate([f[n] for f in feeds]) for n in feeds[0]}


def split(out: Feed, sizes: Sequence[int]) -> list[Feed]:
    """Split merged outputs into one feed per request of ``sizes`` rows."""
    total = sum(sizes)
    if any(a.ndim == 0 or a.shape[0] != total for a in out.values()):
        raise BatchDimensionLost("the model's outputs do not keep the batch dimension")
    cuts = np.cumsum(sizes)[:-1]
    parts = {n: np.split(a, cuts) for n, a in out.items()}
    return [{n: p[k] for n, p in parts.items()} for k in range(len(sizes))]


def isolate(
    items: list[T],
    merged: Callable[[list[T]], list[R]],
    alone: Callable[[T], R | Exception],
) -> list[R | Exception]:
    """Run ``items`` as one merged call; when it raises, narrow down who fails.

    ``merged`` returns one result per item or raises; ``alone`` returns an item's
    result or the exception it raised. BatchDimensionLost always propagates.
    """
    tried = _attempt(items, merged, alone)
    return tried if tried is not None else _halve(items, merged, alone)


def _halve(
    items: list[T],
    merged: Callable[[list[T]], list[R]],
    alone: Callable[[T], R | Exception],
) -> list[R | Exception]:
    """Find the failing items of a group whose merged call raised."""
    if len(items) <= 2:
        return [alone(item) for item in items]
    half = len(items) // 2
    parts = (items[:half], items[half:])
    tried = [_attempt(part, merged, alone) for part in parts]
    if tried[0] is None and tried[1] is None:
        return [alone(item) for item in items]
    results: list[R | Exception] = []
    for part, outcome in zip(parts, tried, strict=True):
        if outcome is None:
            outcome = _halve(part, merged, alone)
        results.extend(outcome)
    return results


def _attempt(
    items: list[T],
    merged: Callable[[list[T]], list[R]],
    alone: Callable[[T], R | Exception],
) -> list[R | Exception] | None:
    """Return the results of one merged try, or None when it raised."""
    if len(items) == 1:
        return [alone(items[0])]
    try:
        return list(merged(items))
    except BatchDimensionLost:
        raise
    except Exception:
        return None
