"""Where a model call runs: inline on the event loop, or in the inference thread pool.

Handing a call to a worker thread and back costs tens of microseconds (a futex wake-up,
then the loop's self-pipe), and when the model holds the GIL (scikit-learn's Python-side
validation) the loop then waits up to a GIL switch interval to run again. For a model
whose calls take a few microseconds that hop is most of the request. So the scheduler
measures every call (wall clock, ``perf_counter``) and keeps a running mean of its
duration and of its size in elements (values over all inputs, not rows: a one-row
request with a huge second dimension is a big call). A call whose estimate (the mean
duration, scaled up linearly when it has more elements than usual) is at most
``inline_max_s`` runs inline. Everything
else - and every call until ``warmup_calls`` have been measured in the pool - runs in
the pool, so real work stays off the event loop. A call slower than the mean replaces
it outright (one slow call sends the next ones back to the pool); faster calls pull it
down gradually. ``inline_max_s`` 0 disables inline calls.
"""

from __future__ import annotations

WARMUP_CALLS = 8
ALPHA = 0.2


class Placement:
    """Decides per model call whether it is cheap enough to run on the event loop."""

    __slots__ = ("_alpha", "_calls", "_elements", "_limit", "_seconds", "_warmup")

    def __init__(
        self, inline_max_s: float, warmup_calls: int = WARMUP_CALLS, alpha: float = ALPHA
    ) -> None:
        self._limit = inline_max_s
        self._warmup = warmup_calls
        self._alpha = alpha
        self._calls = 0
        self._seconds = 0.0
        self._elements = 1.0

    def estimate(self, elements: int) -> float | None:
        """Return the expected seconds of a call on ``elements`` values (None in warm-up)."""
        if self._calls < self._warmup:
            return None
        return self._seconds * max(1.0, elements / self._elements)

    def inline(self, elements: int) -> bool:
        """Return whether a call on ``elements`` values should run on the event loop."""
        if self._limit <= 0:
            return False
        expected = self.estimate(elements)
        return expected is not None and expected <= self._limit

    def observe(self, elements: int, seconds: float) -> None:
        """Record one finished call (from the loop or a worker thread)."""
        if self._calls == 0 or seconds > self._seconds:
            # A call slower than the mean counts in full, so one slow call is enough to
            # send the following ones back to the pool; faster calls lower it gradually.
            self._seconds = seconds
        else:
            self._seconds += self._alpha * (seconds - self._seconds)
        if self._calls == 0:
            self._elements = float(elements)
        else:
            self._elements += self._alpha * (elements - self._elements)
        self._elements = max(self._elements, 1.0)  # empty calls must not make it 0
        self._calls += 1
