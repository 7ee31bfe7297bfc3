"""Run a real ``kubeserve-runtime serve`` process for tests and benchmarks.

``RuntimeProcess`` picks free loopback ports, starts the server as a subprocess (the
same entry point the image runs), waits until ``/v2/health/ready`` answers 200 and stops
it with SIGINT (a drain without the shutdown delay; ``signal`` sends SIGTERM for tests
of the delay). Its log goes to a file so a chatty server never blocks on a pipe. With
``tls_ca`` (the CA that signed the certificate passed in the TLS flags) the REST URL is
``https`` and readiness is polled over TLS, trusting only that CA and presenting no
client certificate (as kubelet's probes do).

``CloudEventsReceiver`` is a real payload-log receiver process: it parses every POST
with the ``cloudevents`` SDK (binary, structured or batch mode) and appends one JSON
line per event (its attributes, data and the request's headers) to a file.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

T = TypeVar("T")


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


GATED_HANDLER = """
import time
from pathlib import Path

GATE = Path({gate!r})


class Handler:
    def predict(self, feed):
        x = feed["x"]
        first = float(x.ravel()[0])
        if first < 0:  # wait until the test opens the gate
            while not GATE.exists():
                time.sleep(0.005)
        else:
            time.sleep(first / 1000)  # milliseconds
        return x * 2
"""


class GatedModel:
    """A custom-handler model (input ``x``) for tests that need requests held in flight.

    A call whose first value is negative waits until ``open()``; any other call sleeps
    that many milliseconds. Outputs are ``2 * x``. Run it with
    ``KUBESERVE_INLINE_INFERENCE_MAX_MS=0`` so no call ever runs on the event loop.
    """

    def __init__(self, root: Path) -> None:
        self.model_dir = root / "gated-model"
        self.model_dir.mkdir(parents=True, exist_ok=True)
        self._gate = root / "gate"
        (self.model_dir / "handler.py").write_text(GATED_HANDLER.format(gate=str(self._gate)))

    def open(self) -> None:
        """Let every waiting call (and every later one) through."""
        self._gate.touch()


CLOUDEVENTS_RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock

import orjson
from cloudevents.conversion import to_dict
from cloudevents.http import from_dict, from_http

OUT = open(sys.argv[2], "ab", buffering=0)
LOCK = Lock()
BATCH = "application/cloudevents-batch+json"


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        if headers.get("content-type", "").startswith(BATCH):
            mode, events = "batch", [from_dict(item) for item in orjson.loads(body)]
        else:
            event = from_http(headers, body)
            mode = "structured" if "ce-id" not in headers else "binary"
            events = [event]
        lines = b"".join(
            orjson.dumps({"mode": mode, "headers": headers, "event": to_dict(e)}) + b"\\n"
            for e in events
        )
        with LOCK:
            OUT.write(lines)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
"""


class CloudEventsReceiver:
    """A CloudEvents HTTP receiver subprocess on a free loopback port (see the module doc)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.path = folder / f"events-{self.port}.jsonl"
        self.path.touch()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL a payload logger posts to."""
        return f"http://127.0.0.1:{self.port}/"

    def events(self) -> list[dict[str, Any]]:
        """Every event received so far: ``{"mode", "headers", "event"}`` each."""
        import orjson

        lines = self.path.read_bytes().splitlines()
        return [orjson.loads(line) for line in lines if line.strip()]

    def __enter__(self) -> Self:
        argv = [sys.executable, "-c", CLOUDEVENTS_RECEIVER, str(self.port), str(self.path)]
        self.process = subprocess.Popen(argv)

        def listening() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the receiver exited with {self.process.returncode}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, "the CloudEvents receiver listens")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()


def wait_until(
    condition: Callable[[], T], what: str, timeout: float = 60.0, every: float = 0.02
) -> T:
    """Call ``condition`` every ``every`` seconds until it returns something truthy; return it.

    The timeout is only a failure guard (TimeoutError naming ``what``); tests wait on the
    condition, never on the clock. Needs tenacity (the dev extra).
    """
    from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

    def give_up(_: object) -> T:
        raise TimeoutError(f"{what}: still not true after {timeout:g} s")

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(every),
        retry=retry_if_result(lambda result: not result),
        retry_error_callback=give_up,
    )
    return retrying(condition)


class RuntimeProcess:
    """A serving runtime subprocess on loopback with free ports."""

    def __init__(
        self,
        model_dir: Path,
        model_name: str,
        *args: str,
        env: dict[str, str] | None = None,
        grpc: bool = True,
        tls_ca: Path | None = None,
    ) -> None:
        self.http_port = free_port()
        self.grpc_port = free_port() if grpc else 0
        self.metrics_port = free_port()
        self.model_name = model_name
        self.tls_ca = tls_ca
        self.argv = [
            sys.executable,
            "-m",
            "kubeserve_runtime.cli",
            "serve",
            "--model-dir",
            str(model_dir),
            "--model-name",
            model_name,
            "--host",
            "127.0.0.1",
            "--http-port",
            str(self.http_port),
            "--grpc-port",
            str(self.grpc_port),
            "--metrics-port",
            str(self.metrics_port),
            *args,
        ]
        self.env = {**os.environ, **(env or {})}
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix="kubeserve-runtime-", suffix=".log"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the REST port."""
        scheme = "https" if self.tls_ca is not None else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        """host:port of the gRPC port."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """URL of the metrics endpoint."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def inflight(self, protocol: str) -> float:
        """The in-flight gauge of one protocol (v1, v2 or grpc), scraped now."""
        labels = f'model="{self.model_name}",protocol="{protocol}",version="'
        for line in httpx.get(self.metrics_url).text.splitlines():
            if line.startswith("kubeserve_inflight_requests{" + labels):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    @property
    def log(self) -> str:
        """Everything the process wrote so far."""
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def start(self, wait_ready: bool = True, timeout: float = 60.0) -> Self:
        """Start the process and (by default) wait until it is ready."""
        self.process = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=self.env
        )
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll readiness until 200; raise with the log if the process dies or times out."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        verify: ssl.SSLContext | bool = True
        if self.tls_ca is not None:
            verify = ssl.create_default_context(cafile=self.tls_ca)
        with httpx.Client(timeout=2.0, verify=verify) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"runtime exited with {self.process.returncode}:\n{self.log}"
                    )
                try:
                    if client.get(f"{self.url}/v2/health/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise TimeoutError(f"runtime not ready after {timeout}s:\n{self.log}")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Send a signal to the process."""
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGINT the process (no shutdown delay), wait for it and return its exit status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def close(self) -> None:
        """Stop the process and delete its log."""
        self.stop()
        self._log.close()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
