"""Independent clients against a real server: tritonclient over HTTP and gRPC (binary on).

The kserve SDK tests live in test_kserve_sdk.py: the kserve and tritonclient packages
both register ``inference.*`` protobuf messages and cannot share one process.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from kubeserve_runtime.testing import RuntimeProcess

Array = np.ndarray[Any, Any]


def test_tritonclient_http_binary(
    sklearn_server: RuntimeProcess, iris: tuple[Array, Array], sklearn_model: Any
) -> None:
    """tritonclient.http: health, metadata and binary infer, unchanged."""
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{sklearn_server.http_port}")
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("iris")
        assert client.get_server_metadata()["name"] == "kubeserve"
        assert client.get_model_metadata("iris")["inputs"][0]["shape"] == [-1, 4]
        rows = iris[0][40:60].astype(np.float32)
        tensor = httpclient.InferInput("input-0", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows, binary_data=True)
        result = client.infer("iris", [tensor])
        expected = sklearn_model.predict(rows.astype(np.float64))
        np.testing.assert_array_equal(result.as_numpy("output-0"), expected)
        json_tensor = httpclient.InferInput("input-0", list(rows.shape), "FP64")
        json_tensor.set_data_from_numpy(rows.astype(np.float64), binary_data=False)
        wanted = httpclient.InferRequestedOutput("output-0", binary_data=False)
        result = client.infer("iris", [json_tensor], outputs=[wanted])
        np.testing.assert_array_equal(result.as_numpy("output-0"), expected)
        bad = httpclient.InferInput("input-0", [2, 2], "FP32")
        bad.set_data_from_numpy(np.ones((2, 2), dtype=np.float32))
        with pytest.raises(InferenceServerException, match=r"shape \[2, 2\] does not match"):
            client.infer("iris", [bad])
    finally:
        client.close()


def test_tritonclient_grpc(
    sklearn_server: RuntimeProcess, iris: tuple[Array, Array], sklearn_model: Any
) -> None:
    """tritonclient.grpc: health, metadata, raw-contents infer and errors, unchanged."""
    client = grpcclient.InferenceServerClient(url=sklearn_server.grpc_target)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("iris")
        assert client.is_model_ready("iris", model_version="v1")
        assert client.get_server_metadata().name == "kubeserve"
        meta = client.get_model_metadata("iris")
        assert meta.platform == "sklearn"
        assert list(meta.inputs[0].shape) == [-1, 4]
        rows = iris[0][90:110].astype(np.float32)
        tensor = grpcclient.InferInput("input-0", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows)
        result = client.infer("iris", [tensor], request_id="abc")
        assert result.get_response().id == "abc"
        expected = sklearn_model.predict(rows.astype(np.float64))
        np.testing.assert_array_equal(result.as_numpy("output-0"), expected)
        bad = grpcclient.InferInput("input-0", [1, 3], "FP32")
        bad.set_data_from_numpy(np.ones((1, 3), dtype=np.float32))
        with pytest.raises(InferenceServerException, match="does not match") as info:
            client.infer("iris", [bad])
        assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
        with pytest.raises(InferenceServerException) as missing:
            client.infer("nope", [tensor])
        assert missing.value.status() == "StatusCode.NOT_FOUND"
        result = client.infer("iris", [tensor])
        np.testing.assert_array_equal(result.as_numpy("output-0"), expected)
    finally:
        client.close()
