"""The elector: holds a ``coordination.k8s.io/v1`` Lease so one operator acts, others wait.

Limits first:

- Safety rests on timing, as with client-go's elector. A leader counts as leading for
  `renew_deadline` seconds from the moment it *sent* its last successful renewal (its
  monotonic clock); a candidate takes a lease that was not released only after it has
  seen the very same record (resourceVersion) for a full `lease_duration` on its own
  monotonic clock. Wall clocks may disagree between nodes; clock *rates* may not (much).
  `lease_duration - renew_deadline` is the margin for writes in flight.
- A write already sent when leadership ends may still land. Every later write through
  the operator's API client is refused by :func:`fence`, and the process exits with
  status :data:`EXIT_LOST` at once, so the Deployment restarts it as a candidate.
  Nothing is undone: the next leader's passes apply the desired state again.
- A standby runs no watches. On takeover it starts kopf, which lists everything before
  the first pass (exactly a restart), so failover takes the lease's expiry (or one
  `retry_period` after a graceful release) plus one full list.
- kopf's own writes (Events at WARNING level) do not pass the fence; they end with kopf.

Health: a candidate serves ``/healthz`` itself (kopf's endpoint exists only once kopf
runs), answering 200 with ``{"leader": bool, "identity", "holder"}`` whether it leads or
stands by: a standby is alive and ready to take over, and a rolling update needs the
new pod Ready while the old one still holds the lease. ``kubeserve_leader`` (1/0) on
/metrics says which pod acts.

Why not kopf's peering: it needs its own KopfPeering CRD and writes to it, and the
project runs kopf observe-only (README, GitOps notes). Why not the kubernetes client's
``leaderelection`` package: it locks ConfigMaps only, measures expiry on the wall clock,
runs the leader's work in a daemon thread and never releases the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import urllib3
from aiohttp import web
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry, Gauge

from kubeserve.controller.election import (
    MICRO_TIME,
    ElectionSettings,
    LeaseRecord,
    is_free_for,
    lease_spec,
)

logger = logging.getLogger("kubeserve.election")

EXIT_LOST = 1
"""Exit status after losing the lease (the Deployment restarts the container)."""
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotLeading(RuntimeError):
    """A write was attempted by an operator that does not hold the lease (any more)."""


class LeaseElector:
    """Acquires, renews and releases one Lease with its own API client and thread.

    The thread is the elector's own, so a reconcile that keeps every shared worker
    thread busy cannot delay a renewal.
    """

    def __init__(self, api: client.ApiClient, settings: ElectionSettings) -> None:
        self.settings = settings
        self.identity = settings.identity
        self.holder: str | None = None
        """The holder this candidate saw last."""
        self._api = client.CoordinationV1Api(api)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubeserve-lease")
        self._seen: tuple[str, float] | None = None
        """(resourceVersion, monotonic time this candidate first saw it)."""
        self._written: LeaseRecord | None = None
        self._valid_until = -math.inf
        self._last_error = ""

    def is_leading(self) -> bool:
        """Whether this process may act now (safe to call from any thread)."""
        return time.monotonic() < self._valid_until

    async def _call(self, method: Callable[..., Any], *args: Any) -> dict[str, Any]:
        """One API call in the elector's thread; the answer as JSON."""
        timings = self.settings.timings

        def call() -> dict[str, Any]:
            response = method(
                *args, _preload_content=False, _request_timeout=timings.renew_deadline
            )
            answer: dict[str, Any] = json.loads(response.data)
            return answer

        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    def _body(self, spec: Mapping[str, Any], resource_version: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.settings.name, "namespace": self.settings.namespace}
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": dict(spec),
        }

    async def _read(self) -> LeaseRecord | None:
        try:
            lease = await self._call(
                self._api.read_namespaced_lease, self.settings.name, self.settings.namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return LeaseRecord.of(lease)

    async def _write(self, spec: Mapping[str, Any], current: LeaseRecord | None) -> bool:
        """Create or replace (optimistic concurrency); False when another writer was first."""
        ns, name = self.settings.namespace, self.settings.name
        try:
            if current is None:
                lease = await self._call(
                    self._api.create_namespaced_lease, ns, self._body(spec, None)
                )
            else:
                body = self._body(spec, current.resource_version)
                lease = await self._call(self._api.replace_namespaced_lease, name, ns, body)
        except ApiException as exc:
            if exc.status == 409:  # AlreadyExists or Conflict: someone else wrote first
                return False
            raise
        record = LeaseRecord.of(lease)
        self._written = record
        self._seen = (record.resource_version, time.monotonic())
        self.holder = record.holder
        return True

    async def _attempt(self) -> bool:
        """One try to acquire or renew; on success leading is valid for renew_deadline."""
        started = time.monotonic()
        record = await self._read()
        if record is not None:
            if self._seen is None or self._seen[0] != record.resource_version:
                self._seen = (record.resource_version, started)
            self.holder = record.holder
            if not is_free_for(record, self.identity, started - self._seen[1]):
                return False
        spec = lease_spec(record, self.identity, dt.datetime.now(dt.UTC), self.settings.timings)
        if not await self._write(spec, record):
            return False
        self._valid_until = started + self.settings.timings.renew_deadline
        return True

    async def _try(self, within: float) -> bool:
        """:meth:`_attempt`, with any failure (API, network, timeout) as False."""
        try:
            async with asyncio.timeout(within):
                return await self._attempt()
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if message != self._last_error:
                logger.warning("lease %s: %s", self._where(), message)
            self._last_error = message
            return False

    def _where(self) -> str:
        return f"{self.settings.namespace}/{self.settings.name}"

    async def acquire(self) -> None:
        """Return once this process holds the lease; stand by until then."""
        timings = self.settings.timings
        announced: str | None = None
        while not await self._try(timings.renew_deadline):
            if self.holder != announced and self.holder not in (None, self.identity):
                logger.info("lease %s is held by %s; standing by", self._where(), self.holder)
                announced = self.holder
            await asyncio.sleep(timings.retry_period)
        logger.info("lease %s acquired by %s: leading", self._where(), self.identity)

    async def keep(self) -> str:
        """Renew every retry_period; return why leadership ended (never returns while leading)."""
        timings = self.settings.timings
        while True:
            await asyncio.sleep(timings.retry_period)
            remaining = self._valid_until - time.monotonic()
            if remaining <= 0:
                return f"lease not renewed for {timings.renew_deadline:g}s"
            if await self._try(remaining):
                continue
            if self.holder not in (None, self.identity):
                self._valid_until = -math.inf
                return f"lease taken over by {self.holder}"

    async def release(self) -> None:
        """Stop leading and hand the lease back at once (graceful shutdown)."""
        written, leading = self._written, self.is_leading()
        self._valid_until = -math.inf
        if written is None or not leading:
            return
        stamp = dt.datetime.now(dt.UTC).strftime(MICRO_TIME)
        spec = {
            "leaseDurationSeconds": 1,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": written.transitions,
        }
        with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError, OSError):
            await self._write(spec, written)
            logger.info("lease %s released", self._where())

    def close(self) -> None:
        """Stop the elector's thread."""
        self._thread.shutdown(wait=False, cancel_futures=True)


def fence(api: client.ApiClient, is_leading: Callable[[], bool]) -> client.ApiClient:
    """Make `api` refuse every request but reads while `is_leading()` is false.

    Every call of the official client (typed APIs and the DynamicClient alike) goes
    through ``ApiClient.request``, so wrapping that one method covers all writes.
    """
    request = api.request

    def fenced(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method.upper() not in READ_ONLY_METHODS and not is_leading():
            raise NotLeading(f"{method} {url} refused: this operator does not hold the lease")
        return request(method, url, *args, **kwargs)

    api.request = fenced
    return api


async def serve_health(elector: LeaseElector, host: str, port: int) -> web.AppRunner:
    """Serve ``/healthz`` for a candidate, leader or standby (see the module docstring)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response(
            {"leader": elector.is_leading(), "identity": elector.identity, "holder": elector.holder}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def exit_now(reason: str) -> NoReturn:
    """Leave at once: no cleanup, no task of the old leader gets another turn."""
    logger.error("leadership lost (%s): exiting so the pod restarts as a candidate", reason)
    logging.shutdown()
    os._exit(EXIT_LOST)


async def run_elected(
    elector: LeaseElector,
    operate: Callable[[], Coroutine[Any, Any, None]],
    *,
    health: tuple[str, int],
    registry: CollectorRegistry,
    lost: Callable[[str], NoReturn] = exit_now,
) -> int:
    """Stand by until the lease is ours, then run `operate` while renewing it.

    SIGTERM/SIGINT while standing by return 0; once `operate` runs, kopf handles them and
    the lease is released when it returns. Losing the lease calls `lost`.
    """
    leader = Gauge("kubeserve_leader", "1 while this process holds the lease.", registry=registry)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = await serve_health(elector, *health)
    try:
        stopping = asyncio.create_task(stop.wait())
        acquiring = asyncio.create_task(elector.acquire())
        await asyncio.wait({stopping, acquiring}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not acquiring.done():
            acquiring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acquiring
            return 0
        leader.set(1)
        # Created before kopf starts: kopf cancels only the tasks that appear after it.
        keeper = asyncio.create_task(elector.keep(), name="kubeserve-lease-keeper")
        operator = asyncio.create_task(operate(), name="kubeserve-operator")
        await asyncio.wait({keeper, operator}, return_when=asyncio.FIRST_COMPLETED)
        if keeper.done():
            leader.set(0)
            error = keeper.exception()
            lost(keeper.result() if error is None else f"lease keeper failed: {error!r}")
        keeper.cancel()
        try:
            await operator
        finally:
            leader.set(0)
            await elector.release()
        return 0
    finally:
        await runner.cleanup()
        elector.close()
