"""Steady prediction traffic for the real-node tests, counted response by response.

Limits first: HTTP/1.1 V2 ``infer`` requests only (httpx), one request at a time per
worker thread, so at most ``concurrency`` requests are ever in flight. Workers run until
:meth:`Load.stop`; a test waits on the tally (:meth:`Load.until`), never on a clock.

Every request becomes one :class:`Outcome`, in one of four kinds, because they mean
different things to a client:

- ``ok``: a 2xx answer (its ``model_version`` says which revision answered);
- ``status``: any other HTTP status (the server answered, with an error);
- ``refused``: the connection was never established (``httpx.ConnectError`` or
  ``ConnectTimeout``): nothing was delivered, a client may retry it safely;
- ``lost``: the connection was made and the request sent, but no answer came (reset,
  closed, timed out): the request may or may not have run.

Each start and each end of a request takes the next number of one event counter, so a
test can ask which requests were in flight between two moments it marked
(:meth:`Load.mark`) without reading any clock.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import httpx
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

Kind = Literal["ok", "status", "refused", "lost"]

IRIS_INPUT = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [6.7, 3.0, 5.2, 2.3]}
    ]
}
"""One iris flower, as a V2 infer body (class 2 for the example's classifier)."""
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
"""Per request: generous (2 shared cores); connect short, so a dead address fails fast."""


@dataclass(frozen=True)
class Outcome:
    """One request: its kind, status, answering revision and the events around it."""

    kind: Kind
    status: int | None
    version: str | None
    error: str
    started: int
    ended: int


def infer_url(base: str, model: str) -> str:
    """Return the V2 infer URL of ``model`` under ``base`` (``http://host:port``)."""
    return f"{base}/v2/models/{model}/infer"


def classify(response: httpx.Response) -> tuple[Kind, str | None]:
    """Return the kind of an answered request and the model version it names."""
    if not response.is_success:
        return "status", None
    version = response.json().get("model_version")
    return "ok", None if version is None else str(version)


class Load:
    """Worker threads sending the same request until stopped; a context manager.

    ``keep_alive=False`` opens a new connection per request (``Connection: close``),
    so a request is ``lost`` only when a server took it and died, never because an idle
    pooled connection went stale.
    """

    def __init__(
        self,
        url: str,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        concurrency: int = 1,
        keep_alive: bool = True,
    ) -> None:
        self.url = url
        self.body = dict(body or IRIS_INPUT)
        self.headers = dict(headers or {})
        if not keep_alive:
            self.headers["Connection"] = "close"
        self.concurrency = concurrency
        self.keep_alive = keep_alive
        self._events = itertools.count(1)
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._in_flight = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _event(self) -> int:
        with self._lock:
            return next(self._events)

    def request(self, http: httpx.Client) -> Outcome:
        """Send one request on ``http``; return its outcome."""
        started = self._event()
        with self._lock:
            self._in_flight += 1
        kind: Kind
        status: int | None = None
        version: str | None = None
        error = ""
        try:
            response = http.post(self.url, json=self.body, headers=self.headers)
            status = response.status_code
            kind, version = classify(response)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            kind, error = "refused", f"{type(exc).__name__}: {exc}"
        except httpx.TransportError as exc:
            kind, error = "lost", f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._in_flight -= 1
            return Outcome(kind, status, version, error, started, next(self._events))

    def _work(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=1 if self.keep_alive else 0)
        with httpx.Client(timeout=TIMEOUT, limits=limits) as http:
            while not self._stop.is_set():
                outcome = self.request(http)
                with self._lock:
                    self._outcomes.append(outcome)

    def start(self) -> Self:
        """Start the workers."""
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._work, name=f"load-{index}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> list[Outcome]:
        """Stop the workers after their current request; return every outcome."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self.outcomes()

    def outcomes(self) -> list[Outcome]:
        """Return the outcomes so far, in the order they ended."""
        with self._lock:
            return list(self._outcomes)

    def mark(self) -> int:
        """Return a new event number: requests ending before it ended before this call."""
        return self._event()

    def until(
        self, check: Callable[[list[Outcome]], bool], what: str, timeout: float = 240.0
    ) -> list[Outcome]:
        """Wait until ``check(outcomes)`` holds; raise TimeoutError naming ``what``."""
        retrying = Retrying(
            stop=stop_after_delay(timeout),
            wait=wait_fixed(0.2),
            retry=retry_if_result(lambda done: not done),
        )
        try:
            retrying(lambda: check(self.outcomes()))
        except Exception as exc:  # tenacity's RetryError: the condition never held
            outcomes = self.outcomes()
            errors = Counter(o.error[:120] for o in failures(outcomes[-200:]))
            raise TimeoutError(
                f"{what} (after {timeout:.0f}s; tally {dict(kinds(outcomes))}; "
                f"last errors {dict(errors)})"
            ) from exc
        return self.outcomes()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def kinds(outcomes: list[Outcome]) -> Counter[str]:
    """Return how many outcomes of each kind there are."""
    return Counter(o.kind for o in outcomes)


def versions(outcomes: list[Outcome]) -> Counter[str | None]:
    """Return how many ``ok`` answers each model version gave."""
    return Counter(o.version for o in outcomes if o.kind == "ok")


def after(outcomes: list[Outcome], event: int) -> list[Outcome]:
    """Return the outcomes of requests started after ``event``."""
    return [o for o in outcomes if o.started > event]


def in_flight_between(outcomes: list[Outcome], first: int, last: int) -> list[Outcome]:
    """Return the requests in flight at some moment between events ``first`` and ``last``."""
    return [o for o in outcomes if o.started < last and o.ended > first]


def failures(outcomes: list[Outcome]) -> list[Outcome]:
    """Return every outcome that is not a 2xx answer."""
    return [o for o in outcomes if o.kind != "ok"]


def send(url: str, count: int, headers: Mapping[str, str] | None = None) -> list[Outcome]:
    """Send ``count`` requests one after another on one connection; return their outcomes."""
    load = Load(url, headers=headers)
    with httpx.Client(timeout=TIMEOUT) as http:
        return [load.request(http) for _ in range(count)]
