"""Hostile and unusual requests at the protocol level, against the real server process.

Oversized and too many headers, clients that send at a trickle, malformed request
lines, bodies declared too large, compressed bodies (and bombs), undecodable gRPC bytes,
both kinds of gRPC tensor contents at once, unknown routes and methods: each gets a
clear answer in the runtime's ``{"error": ...}`` form and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import gzip
import multiprocessing
import os
import signal
import socket
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from kubeserve_runtime.errors import InvalidInput, Overloaded
from kubeserve_runtime.rest.worker import ParseWorker, decode_v2
from kubeserve_runtime.testing import RuntimeProcess

TOKEN = "edge-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 65536
ROW = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}
Array = np.ndarray[Any, Any]


@pytest.fixture(scope="module")
def edge_server(
    sklearn_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeProcess]:
    """The iris model behind a token: 64 KiB bodies, 2 s to send a request, and JSON
    bodies from 4 KiB on parsed in the worker process."""
    tokens = tmp_path_factory.mktemp("edge") / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    args = (
        "--auth-token-file",
        str(tokens),
        "--max-request-bytes",
        str(LIMIT),
        "--request-read-timeout-seconds",
        "2",
        "--parse-worker-min-bytes",
        "4096",
    )
    with RuntimeProcess(sklearn_dir, "iris", *args) as server:
        yield server


def infer_url(server: RuntimeProcess) -> str:
    """The V2 infer URL of the iris model."""
    return f"{server.url}/v2/models/iris/infer"


def still_serving(server: RuntimeProcess) -> None:
    """Assert that an ordinary request is still answered correctly."""
    response = httpx.post(infer_url(server), json=ROW, headers=AUTH)
    assert response.status_code == 200, response.text


def raw_exchange(server: RuntimeProcess, data: bytes) -> bytes:
    """Send raw bytes on a new connection; return everything the server answers."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=60) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def error_of(answer: bytes) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of a raw HTTP answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split()[1]), orjson.loads(body)


def test_oversized_headers_are_431(edge_server: RuntimeProcess) -> None:
    """An 8 MB header, 20,000 headers, or one header past the count limit: 431 JSON."""
    huge = httpx.get(f"{edge_server.url}/v2/health/live", headers={"x-big": "a" * 8_000_000})
    assert huge.status_code == 431
    assert huge.json() == {"error": "request headers exceed 32768 bytes"}
    many = httpx.get(
        f"{edge_server.url}/v2/health/live", headers=[(f"x-h{i}", "1") for i in range(20_000)]
    )
    assert (many.status_code, many.json()) == (431, {"error": "more than 100 request headers"})
    with httpx.Client() as client:
        standard = len(client.build_request("GET", edge_server.url).headers)
        at_limit = [(f"x-h{i}", "1") for i in range(100 - standard)]
        url = f"{edge_server.url}/v2/health/live"
        assert client.get(url, headers=at_limit).status_code == 200
        assert client.get(url, headers=[*at_limit, ("x-one-more", "1")]).status_code == 431
    still_serving(edge_server)


def test_a_request_sent_at_a_trickle_is_408(edge_server: RuntimeProcess) -> None:
    """Headers or a body that stop arriving: 408 JSON when the read timeout passes, and
    the slot is freed (the body case is counted as 408)."""
    status, body = error_of(raw_exchange(edge_server, b"POST /v2/models/iris/infer HTTP/1.1\r\n"))
    assert (status, body) == (408, {"error": "the request did not arrive within 2 s"})
    for protocol, path in (("v2", "/v2/models/iris/infer"), ("v1", "/v1/models/iris:predict")):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n"
        )
        status, body = error_of(raw_exchange(edge_server, head.encode() + b'{"inputs": '))
        assert status == 408
        scrape = httpx.get(edge_server.metrics_url).text
        labels = f'model="iris",protocol="{protocol}"'
        arm = 'routed="weight",status="408",variant="predictor"'
        assert f'kubeserve_requests_total{{{labels},{arm},version=""}}' in scrape
        assert f'kubeserve_inflight_requests{{{labels},version=""}} 0.0' in scrape
    assert "unhandled error" not in edge_server.log
    still_serving(edge_server)


def test_malformed_requests_are_400_json(edge_server: RuntimeProcess) -> None:
    """A garbage request line or a non-numeric Content-Length: 400 in JSON."""
    for data in (
        b"\x16\x03\x01garbage\r\n\r\n",
        b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",
    ):
        assert error_of(raw_exchange(edge_server, data)) == (
            400,
            {"error": "malformed HTTP request"},
        )
    still_serving(edge_server)


def test_declared_oversize_body_is_413_before_it_is_sent(edge_server: RuntimeProcess) -> None:
    """A Content-Length over the limit is answered 413 without waiting for the body (the
    request sends none: the answer can only come from the declared size)."""
    head = (
        "POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: {100 * LIMIT}\r\n\r\n"
    )
    status, body = error_of(raw_exchange(edge_server, head.encode()))
    assert status == 413
    assert body == {"error": f"request body of {100 * LIMIT} bytes exceeds the {LIMIT}-byte limit"}
    still_serving(edge_server)


def test_compressed_bodies_are_decoded_within_the_limit(
    edge_server: RuntimeProcess, iris: tuple[Array, Array], sklearn_model: Any
) -> None:
    """tritonclient's gzip and deflate bodies work; other encodings are 415; a body that
    inflates past the limit is 413; a corrupt one is 400."""
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{edge_server.http_port}")
    try:
        rows = iris[0][:30]
        expected = sklearn_model.predict(rows)
        for algorithm in ("gzip", "deflate"):
            tensor = httpclient.InferInput("x", list(rows.shape), "FP64")
            tensor.set_data_from_numpy(rows, binary_data=False)
            result = client.infer(  # a copy: tritonclient adds Content-Encoding to it
                "iris", [tensor], headers=dict(AUTH), request_compression_algorithm=algorithm
            )
            np.testing.assert_array_equal(result.as_numpy("output-0"), expected)
    finally:
        client.close()
    url, plain = infer_url(edge_server), orjson.dumps(ROW)
    cases = [
        ("br", plain, 415, "Content-Encoding 'br' is not supported"),
        ("gzip", gzip.compress(b" " * (LIMIT + 1)), 413, "decoded request body exceeds"),
        ("gzip", b"\x1f\x8b not gzip", 400, "not valid gzip"),
        ("deflate", zlib.compress(plain)[:-4], 400, "not one complete deflate stream"),
    ]
    for encoding, content, status, message in cases:
        headers = {**AUTH, "Content-Encoding": encoding}
        response = httpx.post(url, content=content, headers=headers)
        assert response.status_code == status, (encoding, response.text)
        assert message in response.json()["error"], (encoding, response.text)
    v1 = httpx.post(
        f"{edge_server.url}/v1/models/iris:predict",
        content=gzip.compress(orjson.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]})),
        headers={**AUTH, "Content-Encoding": "gzip"},
    )
    assert v1.json() == {"predictions": [0]}


def test_large_json_bodies_parsed_off_the_loop_answer_the_same(
    edge_server: RuntimeProcess, iris: tuple[Array, Array], sklearn_model: Any
) -> None:
    """Bodies past --parse-worker-min-bytes go to the worker process: same answers,
    same 400s."""
    rows = np.tile(iris[0], (4, 1))
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [600, 4], "datatype": "FP64", "data": rows.tolist()}]}
    )
    assert 4096 < len(body) < LIMIT
    response = httpx.post(infer_url(edge_server), content=body, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == sklearn_model.predict(rows).tolist()
    broken = httpx.post(infer_url(edge_server), content=body[:-2], headers=AUTH)
    assert broken.status_code == 400
    assert "malformed JSON" in broken.json()["error"]
    ragged = body.replace(b"[600,4]", b"[601,4]")
    bad_shape = httpx.post(infer_url(edge_server), content=ragged, headers=AUTH)
    assert bad_shape.status_code == 400, bad_shape.text
    still_serving(edge_server)


def test_every_error_body_is_json(edge_server: RuntimeProcess) -> None:
    """Unknown paths (404), wrong methods (405, with Allow), :explain (501) and a missing
    or wrong token (401, with WWW-Authenticate: Bearer) all answer {"error": ...}."""
    url = edge_server.url
    unknown = httpx.get(f"{url}/no/such/path")
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"error": "no such endpoint: GET /no/such/path"},
    )
    wrong = httpx.delete(f"{url}/v2/health/ready")
    assert (wrong.status_code, wrong.json()) == (
        405,
        {"error": "method not allowed: DELETE /v2/health/ready"},
    )
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD"}
    explain = httpx.post(f"{url}/v1/models/iris:explain", json={"instances": [[1]]}, headers=AUTH)
    assert explain.status_code == 501
    assert ":explain is not available" in explain.json()["error"]
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        denied = httpx.post(infer_url(edge_server), json=ROW, headers=headers)
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"] == 'Bearer realm="kubeserve"'
        assert "error" in denied.json()


def test_grpc_refuses_ambiguous_and_undecodable_requests(edge_server: RuntimeProcess) -> None:
    """Typed contents together with raw_input_contents, and bytes that are not a
    ModelInferRequest, are INVALID_ARGUMENT (no traceback in the log)."""
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    with grpc.insecure_channel(edge_server.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="iris")
        tensor = request.inputs.add(name="x", datatype="FP64", shape=[1, 4])
        tensor.contents.fp64_contents.extend([1, 2, 3, 4])
        request.raw_input_contents.append(np.array([9, 9, 9, 9], dtype=np.float64).tobytes())
        with pytest.raises(grpc.RpcError) as both:
            stub.ModelInfer(request, metadata=metadata)
        assert both.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "both raw_input_contents and typed contents" in str(both.value.details())
        raw = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as garbage:
            raw(b"\xff\xff\xff\xff", metadata=metadata)
        assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid ModelInfer message" in str(garbage.value.details())
        del request.raw_input_contents[:]
        answer = stub.ModelInfer(request, metadata=metadata)
        assert answer.outputs[0].name == "output-0"
    assert "Traceback" not in edge_server.log


def spawned_workers() -> list[Any]:
    """The worker processes multiprocessing started from this process."""
    return multiprocessing.active_children()


def test_parse_worker_decodes_in_another_process_and_recovers() -> None:
    """Large bodies are decoded in the worker process, exactly as in place; if the worker
    dies, that request gets 503 and the next one starts a new worker."""
    rows = np.arange(4000, dtype=np.float64).reshape(1000, 4)
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [1000, 4], "datatype": "FP64", "data": rows.tolist()}]}
    )
    worker = ParseWorker(min_bytes=1024)

    async def scenario() -> None:
        await worker.start()
        (child,) = spawned_workers()
        decoded = await worker.decode(body, None)
        np.testing.assert_array_equal(decoded.inputs[0].data, decode_v2(body, None).inputs[0].data)
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        with pytest.raises(Overloaded, match="body parser restarted"):
            await worker.decode(body, None)
        again = await worker.decode(body, None)
        np.testing.assert_array_equal(again.inputs[0].data, rows)
        (replacement,) = spawned_workers()
        assert replacement.pid != child.pid
        with pytest.raises(InvalidInput, match="malformed JSON"):
            await worker.decode(body[:-1], None)

    try:
        asyncio.run(scenario())
    finally:
        worker.close()


def test_parse_worker_that_cannot_start_leaves_parsing_on_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If no worker process can be started, the runtime says why and parses in place."""
    spawn = multiprocessing.get_context("spawn")
    body = orjson.dumps(ROW) + b" " * 2048
    worker = ParseWorker(min_bytes=1024)
    spawn.set_executable("/nonexistent/python")
    try:
        asyncio.run(worker.start())
    finally:
        spawn.set_executable(sys.executable)
        worker.close()
    assert "the body parser process did not start" in caplog.text
    decoded = asyncio.run(worker.decode(body, None))
    assert decoded.inputs[0].data.tolist() == [[1, 2, 3, 4]]
    assert worker.min_bytes == sys.maxsize
