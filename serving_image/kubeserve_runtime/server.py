"""Process orchestration: start the transports, load the model, drain on SIGTERM.

Order at start: metrics port, then HTTP and gRPC (liveness answers while the model
loads, readiness stays 503), then the model loads in a worker thread, the heap is frozen
(``gc.freeze``: the model and libraries are never rescanned by the garbage collector)
and readiness turns true. A load failure is logged and the process exits 1.

On SIGTERM/SIGINT: readiness turns false at once (Kubernetes stops routing new
traffic), the process keeps serving for ``shutdown_delay_seconds``, then stops
accepting connections, lets every accepted request finish (up to
``drain_timeout_seconds``) and exits 0. uvicorn's own signal handling is disabled so
this sequence is the only one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import signal
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from kubeserve_runtime.auth import TokenAuth
from kubeserve_runtime.dataplane import DataPlane
from kubeserve_runtime.logs import configure_logging
from kubeserve_runtime.metrics import MetricsServer, RuntimeMetrics
from kubeserve_runtime.rest.app import build_app
from kubeserve_runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)


class _HttpServer(uvicorn.Server):
    """uvicorn without its signal handlers: shutdown is driven by ``Runtime``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Install nothing."""
        yield


class Runtime:
    """One serving process: data plane plus its HTTP, gRPC and metrics servers."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.metrics = RuntimeMetrics(
            self.registry, settings.model_name, settings.model_version or ""
        )
        self.executor = ThreadPoolExecutor(
            max_workers=settings.inference_threads, thread_name_prefix="inference"
        )
        self.plane = DataPlane(settings, self.metrics, self.executor)
        self.auth = TokenAuth(settings.auth_token_file) if settings.auth_token_file else None
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        """Begin graceful shutdown (signal handler)."""
        if not self.plane.draining:
            log.info("shutdown requested: readiness is now false, draining")
        self.plane.draining = True
        self._stop.set()

    async def run(self) -> int:
        """Serve until a stop signal; return the exit status."""
        s = self.settings
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        metrics_server = MetricsServer(self.registry, s.host, s.metrics_port)
        app = build_app(self.plane, self.auth, s.max_request_bytes)
        config = uvicorn.Config(
            app,
            host=s.host,
            port=s.http_port,
            loop="none",
            http="httptools",
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=75,
            timeout_graceful_shutdown=math.ceil(s.drain_timeout_seconds),
        )
        http = _HttpServer(config)
        http_task = asyncio.create_task(http.serve())
        grpc_server: Any = None
        if s.grpc_port:
            from kubeserve_runtime.grpc.server import start_grpc_server

            grpc_server = await start_grpc_server(self.plane, self.auth, s)
        log.info(
            "serving",
            extra={
                "fields": {
                    "model": s.model_name,
                    "http_port": s.http_port,
                    "grpc_port": s.grpc_port,
                    "metrics_port": metrics_server.port,
                }
            },
        )
        status = 0
        try:
            await self.plane.load()
            freeze_heap()
            log.info("model loaded and ready", extra={"fields": {"model": s.model_name}})
        except Exception as exc:
            log.error(f"cannot load the model: {exc}", extra={"fields": {"error": str(exc)}})
            self.request_stop()
            status = 1
        stop_wait = asyncio.create_task(self._stop.wait())
        await asyncio.wait({stop_wait, http_task}, return_when=asyncio.FIRST_COMPLETED)
        if http_task.done() and not self._stop.is_set():
            log.error("the HTTP server stopped unexpectedly")
            status = status or 1
            self.request_stop()
        if status == 0 and s.shutdown_delay_seconds:
            await asyncio.sleep(s.shutdown_delay_seconds)
        http.should_exit = True
        if grpc_server is not None:
            await grpc_server.stop(s.drain_timeout_seconds)
        await asyncio.gather(http_task, return_exceptions=True)
        await self.plane.close()
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
