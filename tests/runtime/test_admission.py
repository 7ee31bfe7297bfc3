"""Admission before the body is read: request, byte and connection caps answer 503.

A gated model keeps requests in flight exactly as long as the test needs (no clock):
the caps are filled, the next request is refused with 503 + Retry-After in JSON, and
everything admitted still completes once the gate opens.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import grpc
import httpx
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from kubeserve_runtime.errors import Overloaded, PayloadTooLarge
from kubeserve_runtime.rest.admission import Admission
from kubeserve_runtime.testing import GatedModel, RuntimeProcess, wait_until

MODEL = "gated"
BODY_LIMIT = 65536
PAD = "x" * 50_000  # makes a body of ~50 KB: two of them pass the 100 KB budget


def body(value: float, padded: bool = False) -> dict[str, Any]:
    """A V2 infer body with one FP32 value, optionally padded with an unused id."""
    doc: dict[str, Any] = {
        "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [value]}]
    }
    if padded:
        doc["id"] = PAD
    return doc


def grpc_request(value: float) -> Any:
    """A gRPC ModelInferRequest with one FP32 value."""
    request = pb.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name="x", datatype="FP32", shape=[1]).contents.fp32_contents.append(value)
    return request


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> GatedModel:
    """The gated model (one per module: the gate is opened once)."""
    return GatedModel(tmp_path_factory.mktemp("gated"))


@pytest.fixture(scope="module")
def capped(gated: GatedModel) -> Iterator[RuntimeProcess]:
    """At most 2 requests per protocol, 100 KB of bodies and 8 connections at once."""
    env = {"KUBESERVE_INFERENCE_THREADS": "4", "KUBESERVE_INLINE_INFERENCE_MAX_MS": "0"}
    args = (
        "--max-concurrent-requests",
        "2",
        "--max-request-bytes",
        str(BODY_LIMIT),
        "--max-inflight-bytes",
        "100000",
        "--max-connections",
        "8",
    )
    with RuntimeProcess(gated.model_dir, MODEL, *args, env=env) as server:
        yield server


def assert_refused(response: httpx.Response, message: str) -> None:
    """A 503 with Retry-After and a JSON reason."""
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert message in response.json()["error"]


def test_caps_refuse_with_503_and_admitted_requests_complete(
    capped: RuntimeProcess, gated: GatedModel
) -> None:
    """Bytes, requests (REST and gRPC) and connections: each cap refuses the next one."""
    url = f"{capped.url}/v2/models/{MODEL}/infer"
    refused = "too many request bodies are being handled"
    with ThreadPoolExecutor(4) as pool, grpc.insecure_channel(capped.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        held_large = pool.submit(httpx.post, url, json=body(-1, padded=True), timeout=60)
        wait_until(lambda: capped.inflight("v2") == 1, "the large request is in flight")
        assert_refused(httpx.post(url, json=body(1, padded=True)), refused)
        small = httpx.post(url, json=body(1))
        assert small.json()["outputs"][0]["data"] == [2]
        held_small = pool.submit(httpx.post, url, json=body(-2), timeout=60)
        wait_until(lambda: capped.inflight("v2") == 2, "two requests are in flight")
        assert_refused(httpx.post(url, json=body(1)), refused)

        held_rpcs = [pool.submit(stub.ModelInfer, grpc_request(-3), timeout=60) for _ in "ab"]
        wait_until(lambda: capped.inflight("grpc") == 2, "two RPCs are in flight")
        with pytest.raises(grpc.RpcError) as too_many:
            stub.ModelInfer(grpc_request(1))
        assert too_many.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        with ExitStack() as idle:
            for _ in range(8):
                idle.enter_context(socket.create_connection(("127.0.0.1", capped.http_port)))
            crowded = httpx.get(f"{capped.url}/v2/health/live")
            assert_refused(crowded, "too many connections")
        gated.open()
        assert held_large.result().json()["outputs"][0]["data"] == [-2]
        assert held_small.result().json()["outputs"][0]["data"] == [-4]
        for rpc in held_rpcs:
            assert rpc.result().outputs[0].contents.fp32_contents == [-6]
    wait_until(lambda: capped.inflight("v2") == 0, "everything admitted is done")
    again = httpx.post(url, json=body(1, padded=True))
    assert again.json()["outputs"][0]["data"] == [2]


def test_admission_charges_declared_sizes_and_the_limit_when_unknown() -> None:
    """Declared bodies cost their length; chunked or compressed ones the whole limit; a
    declared size over the limit is 413 before any cap is looked at."""
    admission = Admission(max_requests=3, max_bytes=90, body_limit=60)
    first = admission.admit(40, encoded=False)
    assert (first, admission.requests, admission.held) == (40, 1, 40)
    with pytest.raises(Overloaded):
        admission.admit(None, encoded=False)  # charged 60: 100 > 90
    with pytest.raises(Overloaded):
        admission.admit(10, encoded=True)  # charged 60 too
    second = admission.admit(50, encoded=False)
    assert admission.held == 90
    with pytest.raises(PayloadTooLarge):
        admission.admit(61, encoded=False)
    admission.release(first)
    admission.release(second)
    assert (admission.requests, admission.held) == (0, 0)
    charges = [admission.admit(0, encoded=False) for _ in range(3)]
    with pytest.raises(Overloaded):
        admission.admit(0, encoded=False)
    assert charges == [0, 0, 0]


def test_inflight_budget_must_fit_one_largest_body() -> None:
    """A byte budget below the body limit could never admit a large body: refused."""
    from pydantic import ValidationError

    from kubeserve_runtime.settings import RuntimeSettings

    with pytest.raises(ValidationError, match="max_inflight_bytes"):
        RuntimeSettings(model_name="m", max_request_bytes=4096, max_inflight_bytes=2048)
    settings = RuntimeSettings(model_name="m", max_request_bytes=4096)
    assert settings.inflight_bytes_limit == 8192
