"""Starting and stopping the servers under test, each as a real process on loopback.

A target knows its command line, its port and its model name; ``running()`` starts it,
waits until ``/v2/models/{name}/ready`` answers 200, checks one real inference, and on
exit sends SIGTERM (SIGKILL after a grace period) to its whole process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from models import BenchModel
from peers import PEER_CODE, Peer

READY_TIMEOUT_S = 120.0


def free_port() -> int:
    """A currently free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Target:
    """One server configuration to measure."""

    server: str
    model: str
    variant: str
    command: list[str]
    port: int
    model_name: str
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A short display name."""
        return self.server if self.variant == "default" else f"{self.server} ({self.variant})"

    @property
    def infer_url(self) -> str:
        """The V2 infer endpoint."""
        return f"http://127.0.0.1:{self.port}/v2/models/{self.model_name}/infer"


@contextlib.contextmanager
def running(target: Target, log: Path, payload: bytes) -> Iterator[dict[str, object]]:
    """Run the target until the block ends; yield one sample response body."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(
            target.command,
            cwd=target.cwd,
            env={**os.environ, **target.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_ready(target, process, log)
            yield _check_inference(target, payload)
        finally:
            _stop(process)


def _wait_ready(target: Target, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll the model's ready endpoint until 200, failing fast if the process died."""
    url = f"http://127.0.0.1:{target.port}/v2/models/{target.model_name}/ready"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{target.label} exited with {process.returncode}; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"{target.label} not ready after {READY_TIMEOUT_S:.0f}s; see {log}")


def _check_inference(target: Target, payload: bytes) -> dict[str, object]:
    """Send the benchmark request once and insist on a 200 with outputs."""
    response = httpx.post(
        target.infer_url,
        content=payload,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    if response.status_code != 200:
        raise RuntimeError(f"{target.label}: HTTP {response.status_code}: {response.text[:500]}")
    body: dict[str, object] = response.json()
    if target.server != "echo" and not body.get("outputs"):
        raise RuntimeError(f"{target.label}: response has no outputs: {response.text[:500]}")
    return body


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL after 20 s."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def kubeserve_target(
    model: BenchModel, work: Path, kubeserve_bin: Path, batch: tuple[int, float] | None
) -> Target:
    """kubeserve-runtime serve, with adaptive batching on (max size, max ms) or off."""
    directory = work / f"kubeserve-{model.name}"
    _copy_model(model, directory)
    port = free_port()
    command = [
        str(kubeserve_bin),
        "serve",
        "--model-dir",
        str(directory),
        "--model-name",
        model.name,
        "--http-port",
        str(port),
        "--grpc-port",
        "0",
        "--metrics-port",
        str(free_port()),
        "--shutdown-delay-seconds",
        "0",
    ]
    variant = "batch off"
    if batch is not None:
        size, latency_ms = batch
        command += ["--max-batch-size", str(size), "--max-latency-ms", f"{latency_ms:g}"]
        variant = f"batch {size}/{latency_ms:g}ms"
    return Target("kubeserve", model.name, variant, command, port, model.name)


def kserve_target(model: BenchModel, work: Path, peer: Peer) -> Target:
    """KServe's ModelServer with the sklearnserver-style model class, default settings."""
    directory = work / f"kserve-{model.name}"
    _copy_model(model, directory)
    port = free_port()
    command = [
        str(peer.python),
        str(PEER_CODE / "kserve_server.py"),
        "--model_name",
        model.name,
        "--model_dir",
        str(directory),
        "--model_format",
        model.model_format,
        "--http_port",
        str(port),
        "--grpc_port",
        str(free_port()),
    ]
    return Target("kserve", model.name, "default", command, port, model.name)


def mlserver_target(model: BenchModel, work: Path, peer: Peer) -> Target:
    """MLServer with mlserver-sklearn (or the custom ONNX MLModel), default settings."""
    directory = work / f"mlserver-{model.name}"
    _copy_model(model, directory)
    port = free_port()
    if model.model_format == "sklearn":
        implementation = "mlserver_sklearn.SKLearnModel"
    else:
        implementation = "mlserver_onnx.OnnxModel"
        shutil.copy2(PEER_CODE / "mlserver_onnx.py", directory / "mlserver_onnx.py")
    settings = {
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "host": "127.0.0.1",
    }
    model_settings = {
        "name": model.name,
        "implementation": implementation,
        "parameters": {"uri": f"./{model.file.name}"},
    }
    (directory / "settings.json").write_text(json.dumps(settings, indent=2))
    (directory / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    command = [str(peer.bin("mlserver")), "start", str(directory)]
    return Target("mlserver", model.name, "default", command, port, model.name, cwd=directory)


def echo_target(python: Path, bench_dir: Path) -> Target:
    """The bare echo app on uvicorn + uvloop + httptools + Starlette."""
    port = free_port()
    command = [
        str(python),
        "-m",
        "uvicorn",
        "echo_app:app",
        "--app-dir",
        str(bench_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return Target("echo", "-", "floor", command, port, "echo")


def _copy_model(model: BenchModel, directory: Path) -> None:
    """Give a server its own copy of the model file."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    shutil.copy2(model.file, directory / model.file.name)
