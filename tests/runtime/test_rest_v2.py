"""Open Inference Protocol V2 REST against a real server, with httpx (JSON and binary)."""

from __future__ import annotations

import struct
from typing import Any

import httpx
import numpy as np
import orjson

from kubeserve_runtime.rest.infer import infer_path_params
from kubeserve_runtime.testing import RuntimeProcess

Array = np.ndarray[Any, Any]


def _infer(
    server: RuntimeProcess, body: Any, path: str = "/v2/models/iris/infer"
) -> httpx.Response:
    """POST a JSON V2 infer body."""
    return httpx.post(f"{server.url}{path}", json=body)


def test_health_and_metadata(sklearn_server: RuntimeProcess) -> None:
    """Health, server metadata, model metadata and readiness, with and without version."""
    url = sklearn_server.url
    assert httpx.get(f"{url}/v2/health/live").status_code == 200
    assert httpx.get(f"{url}/v2/health/ready").json() == {"ready": True}
    server = httpx.get(f"{url}/v2").json()
    assert server["name"] == "kubeserve"
    assert "binary_tensor_data" in server["extensions"]
    meta = httpx.get(f"{url}/v2/models/iris").json()
    assert meta == {
        "name": "iris",
        "versions": ["v1"],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [{"name": "output-0", "datatype": "INT64", "shape": [-1]}],
    }
    assert httpx.get(f"{url}/v2/models/iris/versions/v1").json() == meta
    assert httpx.get(f"{url}/v2/models/iris/ready").status_code == 200
    assert httpx.get(f"{url}/v2/models/iris/versions/v1/ready").status_code == 200
    assert httpx.get(f"{url}/v2/models/iris/versions/v9").status_code == 404
    assert httpx.get(f"{url}/v2/models/other/ready").status_code == 404


def test_infer_json_matches_the_model(
    sklearn_server: RuntimeProcess, iris: tuple[Array, Array], sklearn_model: Any
) -> None:
    """Flat and nested data, FP32 and FP64, versioned path, id echoed."""
    rows = iris[0][:7]
    expected = sklearn_model.predict(rows).tolist()
    for data, datatype in ((rows.ravel().tolist(), "FP64"), (rows.tolist(), "FP32")):
        body = {
            "id": "req-1",
            "inputs": [{"name": "input-0", "shape": [7, 4], "datatype": datatype, "data": data}],
        }
        response = _infer(sklearn_server, body, "/v2/models/iris/versions/v1/infer")
        assert response.status_code == 200, response.text
        doc = response.json()
        assert doc["id"] == "req-1"
        assert doc["model_name"] == "iris"
        assert doc["model_version"] == "v1"
        assert doc["outputs"] == [
            {"name": "output-0", "datatype": "INT64", "shape": [7], "data": expected}
        ]


def test_infer_binary_extension(sklearn_server: RuntimeProcess, iris: tuple[Array, Array]) -> None:
    """Binary input and binary output via Inference-Header-Content-Length."""
    rows = np.ascontiguousarray(iris[0][:5], dtype=np.float32)
    raw = rows.tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [5, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "output-0", "parameters": {"binary_data": True}}],
        }
    )
    response = httpx.post(
        f"{sklearn_server.url}/v2/models/iris/infer",
        content=header + raw,
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert response.status_code == 200, response.text
    n = int(response.headers["inference-header-content-length"])
    doc = orjson.loads(response.content[:n])
    size = doc["outputs"][0]["parameters"]["binary_data_size"]
    assert size == 5 * 8
    values = struct.unpack("<5q", response.content[n : n + size])
    assert list(values) == [0, 0, 0, 0, 0]


def test_bad_v2_requests_are_400_naming_the_field(sklearn_server: RuntimeProcess) -> None:
    """Malformed bodies and mismatched tensors give 400 with the reason."""
    good = {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    cases: list[tuple[Any, str]] = [
        ({"inputs": []}, "'inputs' must be a non-empty list"),
        ({"inputs": [{**good, "shape": [1, 3]}]}, "4 values do not fit shape [1, 3]"),
        ({"inputs": [{**good, "shape": [2, 2]}]}, "shape [2, 2] does not match"),
        ({"inputs": [{**good, "datatype": "BYTES", "data": ["a", "b", "c", "d"]}]}, "BYTES"),
        ({"inputs": [{**good, "datatype": "FP33"}]}, "unknown datatype 'FP33'"),
        ({"inputs": [{**good, "datatype": "BF16"}]}, "BF16 is not supported"),
        ({"inputs": [{**good, "data": ["x", 1, 2, 3]}]}, "not valid FP32"),
        ({"inputs": [{**good, "shape": [1, -4]}]}, "non-negative integers"),
        ({"inputs": [{k: v for k, v in good.items() if k != "data"}]}, "has no 'data'"),
        ({"inputs": [good, good]}, "one input"),
        ({"inputs": [good], "outputs": [{"name": "nope"}]}, "unknown output(s) 'nope'"),
        ({"inputs": [{**good, "parameters": {"binary_data_size": 16}}]}, "no Inference-Header"),
        ({"inputs": "x"}, "'inputs' must be a non-empty list"),
    ]
    for body, message in cases:
        response = _infer(sklearn_server, body)
        assert response.status_code == 400, (body, response.text)
        assert message in response.json()["error"], (body, response.text)
    malformed = httpx.post(f"{sklearn_server.url}/v2/models/iris/infer", content=b"{nope")
    assert malformed.status_code == 400
    assert "malformed JSON" in malformed.json()["error"]
    lying = httpx.post(
        f"{sklearn_server.url}/v2/models/iris/infer",
        content=b"{}",
        headers={"Inference-Header-Content-Length": "99"},
    )
    assert lying.status_code == 400
    assert _infer(sklearn_server, {"inputs": [good]}).status_code == 200


def test_unknown_model_and_version_are_404(sklearn_server: RuntimeProcess) -> None:
    """Unknown model names and versions are 404 with the reason."""
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    response = _infer(sklearn_server, body, "/v2/models/nope/infer")
    assert response.status_code == 404
    assert "nope" in response.json()["error"]
    response = _infer(sklearn_server, body, "/v2/models/iris/versions/v2/infer")
    assert response.status_code == 404
    assert "version 'v2' not found" in response.json()["error"]


def test_infer_path_params_recognises_exactly_the_infer_routes() -> None:
    """The fast front takes only the two infer path shapes; the rest go to Starlette."""
    assert infer_path_params("/v2/models/iris/infer") == {"name": "iris"}
    assert infer_path_params("/v2/models/iris/versions/v1/infer") == {
        "name": "iris",
        "version": "v1",
    }
    for other in (
        "/v2/models//infer",
        "/v2/models/iris/versions//infer",
        "/v2/models/iris/extra/v1/infer",
        "/v2/models/a/b/infer",
        "/v2/models/iris/ready",
        "/v1/models/iris:predict",
    ):
        assert infer_path_params(other) is None, other


def test_infer_paths_route_like_before_the_fast_front(sklearn_server: RuntimeProcess) -> None:
    """Other methods and near-miss paths still get Starlette's 405 and 404."""
    url = sklearn_server.url
    assert httpx.get(f"{url}/v2/models/iris/infer").status_code == 405
    assert httpx.post(f"{url}/v2/models/iris/extra/v1/infer", json={}).status_code == 404
    assert httpx.post(f"{url}/v2/models/iris/versions/v1/infer/", json={}).status_code in (
        307,
        404,
    )
    response = _infer(sklearn_server, [1, 2], "/v2/models/iris/infer")
    assert response.status_code == 400
    assert httpx.get(f"{url}/v2/health/live").status_code == 200


def test_huge_body_is_413(sklearn_server: RuntimeProcess) -> None:
    """A body over --max-request-bytes is refused with 413, declared or chunked."""
    data = [1.0] * 40_000
    body = {"inputs": [{"name": "x", "shape": [10_000, 4], "datatype": "FP32", "data": data}]}
    response = _infer(sklearn_server, body)
    assert response.status_code == 413
    assert "exceeds the 65536-byte limit" in response.json()["error"]

    def chunks() -> Any:
        for _ in range(100):
            yield b" " * 1024

    chunked = httpx.post(f"{sklearn_server.url}/v2/models/iris/infer", content=chunks())
    assert chunked.status_code == 413
    ok = _infer(
        sklearn_server,
        {**body, "inputs": [{**body["inputs"][0], "shape": [1, 4], "data": [1, 2, 3, 4]}]},
    )
    assert ok.status_code == 200
