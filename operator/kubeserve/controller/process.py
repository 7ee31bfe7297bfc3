"""Run ``kubeserve run`` as a real subprocess: for tests, the demo and the benchmark.

The operator under test is the same entry point users run, started with a kubeconfig,
free loopback ports for /metrics and /healthz, and optional namespace scoping so that
tests running side by side never reconcile each other's objects.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """A ``kubeserve run`` subprocess with its log in a file."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *,
        namespaces: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.namespaces = tuple(namespaces)
        self.env = dict(env or {})
        self.args = tuple(args)
        """Extra `kubeserve run` flags (e.g. leader election)."""
        self.metrics_port = 0
        self.health_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Self:
        """Start the operator and wait until its liveness endpoint answers."""
        self.metrics_port, self.health_port = free_port(), free_port()
        argv = [sys.executable, "-m", "kubeserve.cli", "run", "--kubeconfig", str(self.kubeconfig)]
        for ns in self.namespaces:
            argv += ["--namespace", ns]
        argv += self.args
        env = {
            **os.environ,
            "KUBESERVE_OPERATOR_BIND_ADDRESS": "127.0.0.1",
            "KUBESERVE_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "KUBESERVE_OPERATOR_HEALTH_PORT": str(self.health_port),
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self._proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1).is_success:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"operator not healthy after {timeout:.0f}s:\n{self.log()}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (and SIGCONT, should it be frozen), then SIGKILL if it does not exit."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        self._proc.send_signal(signal.SIGCONT)
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def send(self, sig: signal.Signals) -> None:
        """Send `sig` (e.g. SIGSTOP/SIGCONT to freeze the process as a partition would)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit by itself; return its exit status."""
        assert self._proc is not None, "not started"
        return self._proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, as far as the cluster can tell."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    @property
    def pid(self) -> int | None:
        """Process id while running."""
        return None if self._proc is None else self._proc.pid

    def peak_rss_bytes(self) -> int | None:
        """Peak resident memory of the process so far (Linux VmHWM), if readable."""
        if self.pid is None:
            return None
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def log(self) -> str:
        """Everything the operator logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Current samples of /metrics, keyed by (name, sorted labels)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def health(self) -> dict[str, Any]:
        """The liveness endpoint's JSON (kopf: one entry per probe, e.g. "queue")."""
        response = httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=5)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def api_requests(self) -> dict[str, float]:
        """API requests sent so far, keyed by "verb kind"."""
        return {
            f"{dict(labels)['verb']} {dict(labels)['kind']}": value
            for (name, labels), value in self.metrics().items()
            if name == "kubeserve_api_requests_total"
        }

    def writes(self) -> float:
        """Write requests (anything but list/get/watch) sent so far."""
        return sum(v for k, v in self.api_requests().items() if k.split()[0] not in ("list", "get"))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
