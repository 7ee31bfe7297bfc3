"""Bearer-token auth and sampled JSON logs on a real server (REST and gRPC)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from kubeserve_runtime.testing import RuntimeProcess

ROW = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}


@pytest.fixture(scope="module")
def auth_server(
    sklearn_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeProcess]:
    """The iris model behind two tokens, logging no successful request (sample rate 0)."""
    tokens = tmp_path_factory.mktemp("auth") / "tokens"
    tokens.write_text("# rotated weekly\ns3cret\n\nother-token\n")
    args = ("--auth-token-file", str(tokens), "--log-sample-rate", "0")
    with RuntimeProcess(sklearn_dir, "iris", *args) as server:
        yield server


def test_rest_needs_a_token_but_health_is_open(auth_server: RuntimeProcess) -> None:
    """No or wrong token -> 401 with a reason; right tokens work; probes need none."""
    url = f"{auth_server.url}/v2/models/iris/infer"
    assert httpx.get(f"{auth_server.url}/v2/health/live").status_code == 200
    assert httpx.get(f"{auth_server.url}/v2/health/ready").status_code == 200
    missing = httpx.post(url, json=ROW)
    assert missing.status_code == 401
    assert "missing bearer token" in missing.json()["error"]
    wrong = httpx.post(url, json=ROW, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "invalid bearer token"}
    basic = httpx.post(url, json=ROW, headers={"Authorization": "Basic czNjcmV0"})
    assert basic.status_code == 401
    for token in ("s3cret", "other-token"):
        ok = httpx.post(url, json=ROW, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
    v1 = httpx.get(f"{auth_server.url}/v1/models/iris")
    assert v1.status_code == 401


def test_grpc_needs_a_token_but_liveness_is_open(auth_server: RuntimeProcess) -> None:
    """gRPC: UNAUTHENTICATED without the token, served with it; ServerLive stays open."""
    client = grpcclient.InferenceServerClient(url=auth_server.grpc_target)
    try:
        assert client.is_server_live()
        tensor = grpcclient.InferInput("x", [1, 4], "FP64")
        tensor.set_data_from_numpy(np.ones((1, 4)))
        with pytest.raises(InferenceServerException) as info:
            client.infer("iris", [tensor])
        assert info.value.status() == "StatusCode.UNAUTHENTICATED"
        result = client.infer("iris", [tensor], headers={"authorization": "Bearer s3cret"})
        assert result.as_numpy("output-0") is not None
    finally:
        client.close()


def test_logs_are_json_and_sampled(auth_server: RuntimeProcess) -> None:
    """With sample rate 0, errors are still logged as JSON lines; successes are not."""
    marker = "/v2/models/iris/versions/logcheck/infer"
    httpx.post(f"{auth_server.url}{marker}", json=ROW, headers={"Authorization": "Bearer s3cret"})
    httpx.post(
        f"{auth_server.url}/v2/models/iris/infer",
        json=ROW,
        headers={"Authorization": "Bearer s3cret"},
    )
    lines = [json.loads(line) for line in auth_server.log.splitlines() if line.startswith("{")]
    access = [e for e in lines if e.get("logger") == "kubeserve_runtime.access"]
    assert any(e.get("path") == marker and e["status"] == 404 for e in access)
    assert any(e["status"] == 401 for e in access)
    assert all(e["status"] >= 400 for e in access)
    assert not [e for e in lines if e.get("logger") == "kubeserve_runtime.prediction"]
