"""Process orchestration: start the transports, load the model, drain on SIGTERM.

Order at start: metrics port, then HTTP and gRPC (liveness answers while the model
loads, readiness stays 503), then the model loads in a worker thread, the heap is frozen
(``gc.freeze``: the model and libraries are never rescanned by the garbage collector)
and readiness turns true. In a JWT auth mode the token issuer's discovery document and
keys are fetched first (``jwks``). A load or fetch failure is logged and the
process exits 1.

Limits first: the drain is bounded by ``shutdown_delay_seconds`` plus
``drain_timeout_seconds`` (plus ``HANDSHAKE_SETTLE_SECONDS``); a request still running
after that is cancelled. Pipelined HTTP/1.1 requests behind the one in progress are
dropped with their connection (see ``rest.protocol``).

On SIGTERM: readiness turns false at once (REST ``/v2/health/ready`` and V1 model ready
503, gRPC ServerReady/ModelReady false; Kubernetes stops routing new traffic), and for
``shutdown_delay_seconds`` everything is still accepted and served, each HTTP response
with ``Connection: close`` so keep-alive clients reconnect (elsewhere, once the
endpoint is gone). Then the HTTP listener stops taking new connections without
resetting those the kernel already accepted (``listener``), the connections finish
what they hold (``rest.protocol``), gRPC stops with the same grace (GOAWAY: clients
retry elsewhere; started RPCs finish), queued inference finishes, exit 0. SIGINT
(Ctrl-C) does the same without the delay, and cuts a delay already running short.
uvicorn's own signal handling is disabled so this sequence is the only one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import signal
import ssl
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from kubeserve_runtime.audit import build_gate
from kubeserve_runtime.dataplane import DataPlane
from kubeserve_runtime.listener import accept_queue_length, refuse_new_connections
from kubeserve_runtime.logs import configure_logging
from kubeserve_runtime.metrics import MetricsServer, RuntimeMetrics
from kubeserve_runtime.rest.admission import Admission
from kubeserve_runtime.rest.app import build_app
from kubeserve_runtime.rest.protocol import HttpLimits, http_protocol
from kubeserve_runtime.rest.worker import ParseWorker
from kubeserve_runtime.settings import RuntimeSettings
from kubeserve_runtime.tls import TlsReloader

log = logging.getLogger(__name__)
HANDSHAKE_SETTLE_SECONDS = 0.2
"""After new SYNs are dropped, time for handshakes already under way to complete."""
ACCEPT_QUEUE_POLL_SECONDS = 0.01
ACCEPT_QUEUE_WAIT_SECONDS = 2.0
"""Longest wait for the loop to accept what is queued (it takes one loop iteration)."""


class AuthStartError(Exception):
    """The configured auth mode cannot start (its issuer's keys cannot be fetched)."""


class _HttpServer(uvicorn.Server):
    """uvicorn without its signal handlers, closing its listeners without resets."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Install nothing: shutdown is driven by ``Runtime``."""
        yield

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        """Drop new SYNs, let the accept queues empty, then shut down as uvicorn does."""
        listeners = [sock for server in self.servers for sock in server.sockets]
        if listeners and all(refuse_new_connections(sock) for sock in listeners):
            await asyncio.sleep(HANDSHAKE_SETTLE_SECONDS)
            deadline = asyncio.get_running_loop().time() + ACCEPT_QUEUE_WAIT_SECONDS
            while any(accept_queue_length(sock) for sock in listeners):
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(ACCEPT_QUEUE_POLL_SECONDS)
        await super().shutdown(sockets)


class _HttpConfig(uvicorn.Config):
    """uvicorn's configuration with a prepared SSL context (uvicorn builds its own from
    file names, once; the runtime's context follows rotated files)."""

    def __init__(self, app: Any, ssl_context: ssl.SSLContext | None, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._ssl_context = ssl_context

    def load(self) -> None:
        """Load as uvicorn does, then put the runtime's context in place."""
        super().load()
        self.ssl = self._ssl_context


class Runtime:
    """One serving process: data plane plus its HTTP, gRPC and metrics servers."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.metrics = RuntimeMetrics(
            self.registry, settings.model_name, settings.model_version or "", settings.component
        )
        self.executor = ThreadPoolExecutor(
            max_workers=settings.inference_threads, thread_name_prefix="inference"
        )
        self.plane = DataPlane(settings, self.metrics, self.executor)
        self.auth = build_gate(settings, self.metrics)
        self.worker = ParseWorker(settings.parse_worker_min_bytes)
        files = settings.tls_files
        self.tls = TlsReloader(files) if files is not None else None
        self._stop = asyncio.Event()
        self._skip_delay = asyncio.Event()

    def request_stop(self, delay: bool = True) -> None:
        """Begin graceful shutdown (signal handler); ``delay=False`` skips the delay."""
        if not self.plane.draining:
            log.info("shutdown requested: readiness is now false, draining")
        self.plane.draining = True
        if not delay:
            self._skip_delay.set()
        self._stop.set()

    def _http_config(self) -> _HttpConfig:
        """Return uvicorn's configuration: httptools behind the runtime's guarded protocol."""
        s = self.settings
        admission = Admission(
            s.max_concurrent_requests, s.inflight_bytes_limit, s.max_request_bytes
        )
        limits = HttpLimits(s.max_header_bytes, s.max_header_count, s.request_read_timeout_seconds)
        plane = self.plane
        mutual = self.tls is not None and self.tls.files.mutual
        return _HttpConfig(
            build_app(plane, self.auth, admission, self.worker),
            self.tls.rest_context if self.tls is not None else None,
            host=s.host,
            port=s.http_port,
            loop="none",
            http=http_protocol(limits, plane, client_cert_required=mutual),
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=75,
            limit_concurrency=s.max_connections,
            timeout_graceful_shutdown=math.ceil(s.drain_timeout_seconds),
        )

    async def _start_auth(self) -> None:
        """Fetch the token issuer's keys (JWT modes), or raise naming what failed."""
        if self.auth is not None:
            try:
                await self.auth.authenticator.start()
            except Exception as exc:
                raise AuthStartError(f"cannot fetch the token issuer's keys: {exc}") from exc

    async def _shutdown_delay(self) -> None:
        """Keep serving, not ready, for the shutdown delay (SIGINT cuts it short)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._skip_delay.wait(), self.settings.shutdown_delay_seconds)

    async def run(self) -> int:
        """Serve until a stop signal; return the exit status."""
        s = self.settings
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop, False)
        metrics_server = MetricsServer(self.registry, s.host, s.metrics_port)
        http = _HttpServer(self._http_config())
        http_task = asyncio.create_task(http.serve())
        grpc_server: Any = None
        if s.grpc_port:
            from kubeserve_runtime.grpc.server import start_grpc_server

            grpc_server = await start_grpc_server(self.plane, self.auth, s, self.tls)
        reload_task = (
            asyncio.create_task(self.tls.watch(s.tls_reload_seconds)) if self.tls else None
        )
        log.info(
            "serving",
            extra={
                "fields": {
                    "model": s.model_name,
                    "http_port": s.http_port,
                    "grpc_port": s.grpc_port,
                    "metrics_port": metrics_server.port,
                    "tls": self.tls is not None,
                    "mtls": self.tls is not None and self.tls.files.mutual,
                }
            },
        )
        status = 0
        try:
            await self._start_auth()  # readiness needs the keys as much as the model
            await asyncio.gather(self.plane.load(), self.worker.start())
            freeze_heap()
            log.info("model loaded and ready", extra={"fields": {"model": s.model_name}})
        except Exception as exc:
            what = "cannot start" if isinstance(exc, AuthStartError) else "cannot load the model"
            log.error(f"{what}: {exc}", extra={"fields": {"error": str(exc)}})
            self.request_stop()
            status = 1
        stop_wait = asyncio.create_task(self._stop.wait())
        await asyncio.wait({stop_wait, http_task}, return_when=asyncio.FIRST_COMPLETED)
        if http_task.done() and not self._stop.is_set():
            log.error("the HTTP server stopped unexpectedly")
            status = status or 1
            self.request_stop()
        if status == 0:
            await self._shutdown_delay()
        http.should_exit = True
        if reload_task is not None:
            reload_task.cancel()
        if grpc_server is not None:
            await grpc_server.stop(s.drain_timeout_seconds)
        await asyncio.gather(http_task, return_exceptions=True)
        await self.plane.close()
        if self.auth is not None:
            await self.auth.authenticator.close()
        self.worker.close()
        self.executor.shutdown(wait=True)
        metrics_server.close()
        log.info("stopped", extra={"fields": {"exit_status": status}})
        return status


def freeze_heap() -> None:
    """Collect once, then move every surviving object out of the garbage collector's view.

    The loaded model and the imported libraries are hundreds of thousands of objects
    that live as long as the process. Without this, every full (generation 2)
    collection walks them all - tens of milliseconds with the loop stopped, which is
    the p99 under load. Frozen, they are never scanned; new garbage is still collected.
    """
    gc.collect()
    gc.freeze()


def serve(settings: RuntimeSettings) -> int:
    """Run the serving runtime on uvloop until stopped; return the exit status."""
    configure_logging()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is part of the runtime extra
        return asyncio.run(Runtime(settings).run())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(Runtime(settings).run())
