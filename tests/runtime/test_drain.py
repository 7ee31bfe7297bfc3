"""SIGTERM drains: not ready but serving through the delay, then nothing accepted is lost.

The server is the real process; the clients are independent (httpx and grpc in this
process, on their own connections). Tests wait on conditions: a model call that blocks
until the test creates a gate file keeps a request in flight exactly as long as needed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from kubeserve_runtime.testing import GatedModel, RuntimeProcess, wait_until

MODEL = "gated"
ENV = {"KUBESERVE_INFERENCE_THREADS": "4", "KUBESERVE_INLINE_INFERENCE_MAX_MS": "0"}
CLIENTS = 32


def v2_body(value: float) -> dict[str, Any]:
    """A V2 infer body with one FP32 value."""
    return {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [value]}]}


def grpc_request(value: float) -> Any:
    """A gRPC ModelInferRequest with one FP32 value."""
    request = pb.ModelInferRequest(model_name=MODEL)
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[1])
    tensor.contents.fp32_contents.append(value)
    return request


@pytest.fixture
def gated(tmp_path: Path) -> GatedModel:
    """A model whose calls sleep x ms, or wait for the gate when x < 0."""
    return GatedModel(tmp_path)


def accepts_connections(server: RuntimeProcess) -> bool:
    """Whether a new connection to the REST port is taken (and answered)."""
    try:
        httpx.get(f"{server.url}/v2/health/live", timeout=httpx.Timeout(5, connect=0.5))
    except (httpx.ConnectError, httpx.ConnectTimeout):
        return False
    return True


def exited(process: subprocess.Popen[bytes] | None) -> int | None:
    """The exit status once the process has ended."""
    assert process is not None
    return process.wait(60)


@pytest.mark.slow
def test_shutdown_delay_serves_while_not_ready_then_finishes_in_flight(
    gated: GatedModel,
) -> None:
    """During the delay readiness is false everywhere while requests are still served
    (responses say Connection: close); after it, REST and gRPC requests in flight finish."""
    env = {**ENV, "KUBESERVE_SHUTDOWN_DELAY_SECONDS": "600"}
    server = RuntimeProcess(gated.model_dir, MODEL, env=env).start()
    infer = f"{server.url}/v2/models/{MODEL}/infer"
    channel = grpc.insecure_channel(server.grpc_target)
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    try:
        with httpx.Client(timeout=30) as keep_alive, ThreadPoolExecutor(2) as pool:
            before = keep_alive.post(infer, json=v2_body(1))
            assert before.status_code == 200
            assert before.headers.get("connection") != "close"
            server.signal(signal.SIGTERM)
            wait_until(
                lambda: httpx.get(f"{server.url}/v2/health/ready").status_code == 503,
                "readiness turns false after SIGTERM",
            )
            assert httpx.get(f"{server.url}/v2/health/live").status_code == 200
            v1_ready = httpx.get(f"{server.url}/v1/models/{MODEL}")
            assert (v1_ready.status_code, v1_ready.json()["ready"]) == (503, False)
            assert not stub.ServerReady(pb.ServerReadyRequest()).ready
            assert not stub.ModelReady(pb.ModelReadyRequest(name=MODEL)).ready
            during = keep_alive.post(infer, json=v2_body(2))
            assert during.json()["outputs"][0]["data"] == [4]
            assert during.headers["connection"] == "close"
            fresh = httpx.post(infer, json=v2_body(3), timeout=30)
            assert fresh.json()["outputs"][0]["data"] == [6]
            assert stub.ModelInfer(grpc_request(4)).outputs[0].contents.fp32_contents == [8]

            held_rest = pool.submit(httpx.post, infer, json=v2_body(-1), timeout=60)
            held_grpc = pool.submit(stub.ModelInfer, grpc_request(-1), timeout=60)
            wait_until(
                lambda: server.inflight("v2") == 1 and server.inflight("grpc") == 1,
                "a REST and a gRPC request wait at the gate",
            )
            server.signal(signal.SIGINT)  # cuts the delay short
            wait_until(lambda: not accepts_connections(server), "the listener stops")
            assert server.process is not None
            assert server.process.poll() is None
            gated.open()
            assert held_rest.result().json()["outputs"][0]["data"] == [-2]
            assert held_grpc.result().outputs[0].contents.fp32_contents == [-2]
        assert exited(server.process) == 0
    finally:
        channel.close()
        server.close()


@dataclass
class Tally:
    """Outcomes of the load generator's requests, by kind."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)

    def add(self, outcome: str, detail: str = "") -> None:
        """Count one request's outcome; keep the details of lost ones."""
        with self.lock:
            self.outcomes[outcome] += 1
            if outcome == "lost":
                self.lost.append(detail)


def client_loop(
    url: str, keep_alive: bool, signalled: threading.Event, stop: threading.Event, tally: Tally
) -> None:
    """Send requests until told to stop; classify each one.

    A connection that is refused (or whose SYN is dropped) never carried the request:
    the client may retry it anywhere, so it is not lost. Anything else that is not a
    correct 200 happened after the request was sent: lost.
    """
    limits = httpx.Limits(max_keepalive_connections=None if keep_alive else 0)
    timeout = httpx.Timeout(60, connect=1)
    value = 0
    with httpx.Client(limits=limits, timeout=timeout) as client:
        while not stop.is_set():
            value += 1
            after = signalled.is_set()
            try:
                response = client.post(url, json=v2_body(5 + value % 3))
            except (httpx.ConnectError, httpx.ConnectTimeout):
                tally.add("not sent")
                continue
            except httpx.TransportError as exc:
                tally.add("lost", f"{type(exc).__name__}: {exc}")
                continue
            if response.status_code != 200 or response.json()["outputs"][0]["data"] != [
                2 * (5 + value % 3)
            ]:
                tally.add("lost", f"{response.status_code}: {response.text[:200]}")
            else:
                tally.add("ok after SIGTERM" if after else "ok")


@pytest.fixture
def load(gated: GatedModel) -> Iterator[tuple[RuntimeProcess, Tally, threading.Event, list[Any]]]:
    """A server under load from 32 clients, half keep-alive, half a connection each."""
    env = {**ENV, "KUBESERVE_SHUTDOWN_DELAY_SECONDS": "2"}
    server = RuntimeProcess(gated.model_dir, MODEL, env=env).start()
    tally, signalled, stop = Tally(), threading.Event(), threading.Event()
    url = f"{server.url}/v2/models/{MODEL}/infer"
    pool = ThreadPoolExecutor(CLIENTS)
    futures: list[Future[None]] = [
        pool.submit(client_loop, url, i % 2 == 0, signalled, stop, tally) for i in range(CLIENTS)
    ]
    try:
        yield server, tally, signalled, futures
    finally:
        stop.set()
        pool.shutdown(wait=True)
        server.close()


@pytest.mark.slow
def test_sigterm_under_load_loses_no_request(
    load: tuple[RuntimeProcess, Tally, threading.Event, list[Any]],
) -> None:
    """32 clients (keep-alive and a new connection per request) through SIGTERM: every
    request that reached the server is answered, the delay serves new connections, and
    the process exits 0."""
    server, tally, signalled, futures = load
    wait_until(lambda: tally.outcomes["ok"] >= 4 * CLIENTS, "the clients are all running")
    server.signal(signal.SIGTERM)
    signalled.set()
    assert exited(server.process) == 0
    wait_until(lambda: tally.outcomes["not sent"] >= CLIENTS, "the clients see the port closed")
    for future in futures:
        assert not future.done(), future.exception()
    assert tally.lost == [], f"{len(tally.lost)} requests lost: {tally.lost[:5]}"
    assert tally.outcomes["ok after SIGTERM"] > 0
    events = [json.loads(x) for x in server.log.splitlines() if x.startswith("{")]
    assert any(e["msg"] == "stopped" and e.get("exit_status") == 0 for e in events)
