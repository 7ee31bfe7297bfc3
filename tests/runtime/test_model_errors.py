"""Model exceptions against a real server: logged with the request id, never echoed.

The typed server's handler raises KeyError (a bug), ValueError (the model refusing what
passed validation) or the runtime's InvalidInput (a reason meant for the client) when
f32 starts with 13, 7 or 9.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import orjson
import pytest
from tritonclient.grpc import service_pb2_grpc

from kubeserve_runtime.testing import RuntimeProcess

TypedBody = Callable[..., dict[str, Any]]

Case = tuple[str, float, int, str, str]
CASES: list[Case] = [
    ("a bug's KeyError is a 500", 13.0, 500, "the model failed on this request", "KeyError"),
    ("ValueError is a 400", 7.0, 400, "the model could not process this input", "ValueError"),
]


def _log_lines(server: RuntimeProcess, request_id: str) -> list[dict[str, Any]]:
    """The server's JSON log lines that carry ``request_id``."""
    lines = [orjson.loads(line) for line in server.log.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("request_id") == request_id]


@pytest.mark.parametrize(
    ("marker", "status", "message", "exception"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_model_exception_is_logged_with_the_request_id_and_not_echoed(
    typed_server: RuntimeProcess,
    typed_body: TypedBody,
    marker: float,
    status: int,
    message: str,
    exception: str,
) -> None:
    """The client reads a generic message naming the request id; the log has the rest."""
    body = typed_body(f32={"data": [[marker, 0.0]]})
    request_id = f"req-{int(marker)}"
    response = httpx.post(
        f"{typed_server.url}/v2/models/typed/infer", json={**body, "id": request_id}
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error
    assert f"request id {request_id}" in error
    assert "secret" not in error
    assert exception not in error
    logged = _log_lines(typed_server, request_id)
    failure = next(line for line in logged if line["msg"] == f"the model raised {exception}")
    assert failure["status"] == status
    assert "secret-" in failure["exc"]


def test_a_request_without_an_id_gets_one_to_quote(
    typed_server: RuntimeProcess, typed_instance: Callable[..., dict[str, Any]]
) -> None:
    """A V1 request (no id field) gets a generated id in the message and the log line."""
    response = httpx.post(
        f"{typed_server.url}/v1/models/typed:predict",
        json={"instances": [typed_instance(f32=[13.0, 1.0])]},
    )
    assert response.status_code == 500, response.text
    found = re.search(r"request id ([0-9a-f-]{36})", response.json()["error"])
    assert found is not None
    assert _log_lines(typed_server, found.group(1))


def test_a_handler_refusal_meant_for_the_client_is_passed_on(
    typed_server: RuntimeProcess, typed_body: TypedBody
) -> None:
    """InvalidInput raised by a handler keeps its message (it chose to tell the client)."""
    response = httpx.post(
        f"{typed_server.url}/v2/models/typed/infer", json=typed_body(f32={"data": [[9.0, 0]]})
    )
    assert response.status_code == 400
    assert response.json() == {"error": "f32 must not start with 9"}


def test_grpc_gets_the_same_mapping(
    typed_server: RuntimeProcess, typed_body: TypedBody, grpc_request: Callable[..., Any]
) -> None:
    """INTERNAL for the KeyError, with the generic message; the server keeps serving."""
    request = grpc_request("typed", typed_body(f32={"data": [[13.0, 0.0]]}), "grpc-13")
    with grpc.insecure_channel(typed_server.grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        assert "the model failed on this request (request id grpc-13" in caught.value.details()
        assert "secret" not in caught.value.details()
        request.inputs[3].contents.fp32_contents[0] = 1.0
        assert stub.ModelInfer(request, timeout=30).outputs
