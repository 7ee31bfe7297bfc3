"""Process supervision: fetch each model, start its runtime, wait until it is ready,
watch the runtimes and stop them.

Limits: readiness is the runtime's own ``/v2/health/ready`` polled every 0.1 s up to
``READY_TIMEOUT``; a stop is SIGINT (the runtime drains in-flight requests and skips
the shutdown delay) and SIGKILL after ``STOP_TIMEOUT``; a runtime that exits on its own
ends the whole session (no restarts: a crash locally is something to read in its log,
not to hide). Nothing here prints: the command says what happens, from what these calls return.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeserve.local.errors import LocalError
from kubeserve.local.ports import Ports, check_free
from kubeserve.local.predictors import Predictor
from kubeserve.local.settings import download_argv
from kubeserve_runtime.contract import READY_PATH

READY_TIMEOUT = 180.0
STOP_TIMEOUT = 40.0
"""Longer than the runtime's 30 s drain of in-flight requests."""


@dataclass
class Running:
    """A started runtime process."""

    predictor: Predictor
    ports: Ports
    process: subprocess.Popen[bytes]
    log: Path
    host: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Base URL of the REST port."""
        return f"http://{self.host}:{self.ports.http}"

    def exit_report(self) -> str:
        """Why the runtime is gone: its exit status and the end of its log."""
        return (
            f"{self.predictor.component}: runtime exited with {self.process.returncode}; "
            f"last lines of {self.log}:\n{log_tail(self.log)}"
        )


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file."""
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


class Session:
    """Downloads, starts, watches and stops the local runtimes of one InferenceService."""

    def __init__(self, work_dir: Path, host: str) -> None:
        self.work_dir = work_dir
        self.host = host
        self.running: list[Running] = []
        self.stop_requested = threading.Event()

    def model_dir(self, predictor: Predictor) -> Path:
        """Where a fetched model of `predictor` goes."""
        return self.work_dir / predictor.deployment / "model"

    def fetch(self, predictor: Predictor, uri: str) -> Path:
        """Download `uri` like the init container does; return the model folder."""
        dest = self.model_dir(predictor)
        argv = download_argv(predictor, uri, dest)
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:  # the download command redacts URIs in what it prints
            output = (result.stderr or result.stdout).strip()
            raise LocalError(f"{predictor.component}: download failed: {output}")
        return dest

    def start(self, predictor: Predictor, env: dict[str, str], ports: Ports) -> Running:
        """Start one runtime with the pod's arguments and `env`; its log goes to a file."""
        for port in (ports.http, ports.grpc, ports.metrics):
            check_free(self.host, port)
        log = self.work_dir / f"{predictor.deployment}.log"
        argv = [sys.executable, "-m", "kubeserve_runtime.cli", *predictor.serve_args]
        with log.open("ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        running = Running(predictor, ports, process, log, self.host)
        self.running.append(running)
        return running

    def wait_ready(self, running: Running, timeout: float = READY_TIMEOUT) -> None:
        """Poll /v2/health/ready until 200; fail with the log tail if the process exits."""
        import httpx

        deadline = time.monotonic() + timeout
        ready = f"{running.url}{READY_PATH}"
        with httpx.Client(timeout=2.0) as client:
            while not self.stop_requested.is_set():
                if running.process.poll() is not None:
                    raise LocalError(running.exit_report())
                try:
                    if client.get(ready).status_code == 200:
                        meta = client.get(f"{running.url}/v2/models/{running.predictor.model_name}")
                        running.metadata = meta.json() if meta.status_code == 200 else {}
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise LocalError(
                        f"{running.predictor.component}: not ready after {timeout:.0f}s; "
                        f"last lines of {running.log}:\n{log_tail(running.log)}"
                    )
                self.stop_requested.wait(0.1)

    def watch(self) -> Running | None:
        """Block until a stop is requested (None) or a runtime exits on its own (it)."""
        while not self.stop_requested.wait(0.5):
            for running in self.running:
                if running.process.poll() is not None:
                    return running
        return None

    def stop(self) -> None:
        """SIGINT every runtime (they drain), SIGKILL what is left after the timeout.

        SIGINT, not SIGTERM: both drain in-flight requests, but SIGTERM first waits out
        the shutdown delay, which exists for a pod leaving a Service's endpoints. Locally
        no load balancer is catching up, so the delay would only make Ctrl-C slow.
        """
        for running in self.running:
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT
        for running in self.running:
            try:
                running.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()
