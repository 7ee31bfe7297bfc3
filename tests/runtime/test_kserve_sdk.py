"""The kserve SDK clients (REST v1, REST v2, gRPC) against a real server, unchanged.

The SDK runs in its own interpreter: kserve and tritonclient both register the
``inference.*`` protobuf messages, and one process cannot hold both.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import orjson

from kubeserve_runtime.testing import RuntimeProcess

Array = np.ndarray[Any, Any]

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    import numpy as np
    from kserve import InferenceGRPCClient, InferenceRESTClient, RESTConfig
    from kserve import InferInput, InferRequest

    async def main(http_url, grpc_target, rows):
        out = {}
        v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
        out["live"] = await v2.is_server_live(http_url)
        out["ready"] = await v2.is_server_ready(http_url)
        out["model_ready"] = await v2.is_model_ready(http_url, "iris")
        tensor = InferInput(name="input-0", shape=list(rows.shape), datatype="FP32")
        tensor.set_data_from_numpy(rows, binary_data=False)
        result = await v2.infer(http_url, InferRequest(model_name="iris", infer_inputs=[tensor]),
                                model_name="iris")
        out["rest_v2"] = result.outputs[0].as_numpy().tolist()
        await v2.close()
        v1 = InferenceRESTClient(RESTConfig(protocol="v1", retries=0))
        result = await v1.infer(http_url, {"instances": rows.tolist()}, model_name="iris")
        out["rest_v1"] = result["predictions"]
        await v1.close()
        grpc_client = InferenceGRPCClient(url=grpc_target, retries=2)
        tensor = InferInput(name="input-0", shape=list(rows.shape), datatype="FP32")
        tensor.set_data_from_numpy(rows)
        result = await grpc_client.infer(InferRequest(model_name="iris", infer_inputs=[tensor]))
        out["grpc"] = result.outputs[0].as_numpy().tolist()
        await grpc_client.close()
        print(json.dumps(out))

    rows = np.asarray(json.loads(sys.argv[3]), dtype=np.float32)
    asyncio.run(main(sys.argv[1], sys.argv[2], rows))
    """
)


def test_kserve_sdk_rest_and_grpc(
    sklearn_server: RuntimeProcess, iris: tuple[Array, Array], sklearn_model: Any
) -> None:
    """InferenceRESTClient (v1 and v2) and InferenceGRPCClient get the model's answers."""
    rows = iris[0][::25].astype(np.float32)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            sklearn_server.url,
            sklearn_server.grpc_target,
            orjson.dumps(rows.tolist()).decode(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = orjson.loads(result.stdout.strip().splitlines()[-1])
    expected = sklearn_model.predict(rows.astype(np.float64)).tolist()
    assert out == {
        "live": True,
        "ready": True,
        "model_ready": True,
        "rest_v2": expected,
        "rest_v1": expected,
        "grpc": expected,
    }
