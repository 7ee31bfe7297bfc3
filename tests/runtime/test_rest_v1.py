"""KServe V1 REST against a real server: predictions, metadata, and bad input."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from kubeserve_runtime.testing import RuntimeProcess

Array = np.ndarray[Any, Any]


def test_v1_predict_matches_the_model(
    sklearn_server: RuntimeProcess, iris: tuple[Array, Array], sklearn_model: Any
) -> None:
    """Predictions over HTTP equal in-process predictions."""
    rows = iris[0][::10]
    response = httpx.post(
        f"{sklearn_server.url}/v1/models/iris:predict", json={"instances": rows.tolist()}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": sklearn_model.predict(rows).tolist()}


def test_v1_accepts_inputs_as_alias(sklearn_server: RuntimeProcess) -> None:
    """``inputs`` works like ``instances`` (TF Serving style)."""
    response = httpx.post(
        f"{sklearn_server.url}/v1/models/iris:predict", json={"inputs": [[6.0, 3.0, 5.0, 2.0]]}
    )
    assert response.status_code == 200
    assert response.json() == {"predictions": [2]}


def test_v1_model_status_and_list(sklearn_server: RuntimeProcess) -> None:
    """GET /v1/models and /v1/models/{m} describe the served model."""
    assert httpx.get(f"{sklearn_server.url}/v1/models/iris").json() == {
        "name": "iris",
        "ready": True,
    }
    assert httpx.get(f"{sklearn_server.url}/v1/models").json() == {"models": ["iris"]}


def test_v1_bad_requests_are_4xx_and_server_keeps_serving(sklearn_server: RuntimeProcess) -> None:
    """Malformed JSON, wrong shapes, strings and unknown models give clear 4xx errors."""
    url = f"{sklearn_server.url}/v1/models/iris:predict"
    cases: list[tuple[str, bytes, int, str]] = [
        ("malformed", b'{"instances": [[1,2', 400, "malformed JSON"),
        ("not a list", b'{"instances": 3}', 400, "'instances' must be a non-empty list"),
        ("empty", b'{"instances": []}', 400, "non-empty list"),
        ("ragged", b'{"instances": [[1,2,3,4],[1]]}', 400, "rectangular"),
        ("strings", b'{"instances": [["a","b","c","d"]]}', 400, "input-0"),
        ("too few features", b'{"instances": [[1,2,3]]}', 400, "shape [1, 3]"),
        ("array body", b"[1, 2]", 400, "JSON object"),
    ]
    for label, body, status, message in cases:
        response = httpx.post(url, content=body)
        assert response.status_code == status, (label, response.text)
        assert message in response.json()["error"], (label, response.text)
    unknown = httpx.post(
        f"{sklearn_server.url}/v1/models/nope:predict", json={"instances": [[1, 2, 3, 4]]}
    )
    assert unknown.status_code == 404
    assert "'nope' is not served here" in unknown.json()["error"]
    ok = httpx.post(url, json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert ok.json() == {"predictions": [0]}
