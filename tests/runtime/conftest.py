"""Fixtures for runtime tests: tiny real models trained here, and real servers.

Every model is trained in the session (iris, a few milliseconds each) and saved the way
a user would ship it. Servers are real ``kubeserve-runtime serve`` subprocesses on
loopback; the iris server is shared by the whole session (tests only read from it).

Storage tests serve files from real HTTP servers on loopback (``serve_http``), over TLS
with a certificate for 127.0.0.1 from a test CA (``loopback_tls``); ``trust_loopback_ca``
makes httpx trust that CA through ``SSL_CERT_FILE``, as a user would for a private CA.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from kubeserve_runtime.testing import RuntimeProcess

Array = np.ndarray[Any, Any]


@pytest.fixture(scope="session")
def iris() -> tuple[Array, Array]:
    """The iris features (float64, 150x4) and labels."""
    features, labels = load_iris(return_X_y=True)
    return np.asarray(features), np.asarray(labels)


@pytest.fixture(scope="session")
def sklearn_model(iris: tuple[Array, Array]) -> LogisticRegression:
    """A logistic regression fitted on iris."""
    return LogisticRegression(max_iter=500).fit(*iris)


@pytest.fixture(scope="session")
def sklearn_dir(tmp_path_factory: pytest.TempPathFactory, sklearn_model: Any) -> Path:
    """A model directory holding model.joblib."""
    path = tmp_path_factory.mktemp("sklearn")
    joblib.dump(sklearn_model, path / "model.joblib")
    return path


@pytest.fixture(scope="session")
def sklearn_server(sklearn_dir: Path) -> Iterator[RuntimeProcess]:
    """A runtime serving the iris model as 'iris', version 'v1', 64 KiB body limit."""
    with RuntimeProcess(
        sklearn_dir, "iris", "--model-version", "v1", "--max-request-bytes", "65536"
    ) as server:
        yield server


@pytest.fixture(scope="session")
def loopback_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A fresh test CA (PEM file) and a server context with a 127.0.0.1 certificate it
    signed."""
    from kubeserve.devcluster import certs

    folder = tmp_path_factory.mktemp("tls")
    ca = certs.certificate_authority("kubeserve-test-ca")
    leaf = certs.issue(ca, "127.0.0.1", ip_addresses=("127.0.0.1",), server=True)
    (folder / "ca.pem").write_bytes(ca.cert)
    (folder / "server.pem").write_bytes(leaf.cert)
    (folder / "server.key").write_bytes(leaf.key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    return folder / "ca.pem", context


@pytest.fixture
def trust_loopback_ca(
    loopback_tls: tuple[Path, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Clients made during the test trust the loopback CA (and only it); its PEM file."""
    monkeypatch.setenv("SSL_CERT_FILE", str(loopback_tls[0]))
    return loopback_tls[0]


@pytest.fixture(scope="module")
def serve_http(loopback_tls: tuple[Path, ssl.SSLContext]) -> Iterator[Callable[..., str]]:
    """``serve_http(handler_factory, tls=False)`` starts a threaded HTTP (or HTTPS, with
    the loopback certificate) server and returns its base URL. All are stopped when the
    module's tests are done."""

    def start(handler: Callable[..., BaseHTTPRequestHandler], tls: bool = False) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if tls:
            server.socket = loopback_tls[1].wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        stack.callback(thread.join)
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
        return f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"

    with ExitStack() as stack:
        yield start


TYPED_HANDLER = '''
"""Echoes its inputs, one of each kind of datatype; marker values in f32 make it fail."""

from kubeserve_runtime.errors import InvalidInput


class Handler:
    inputs = [
        {"name": "i8", "datatype": "INT8", "shape": [-1, 2]},
        {"name": "i64", "datatype": "INT64", "shape": [-1, 2]},
        {"name": "f16", "datatype": "FP16", "shape": [-1, 2]},
        {"name": "f32", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "flag", "datatype": "BOOL", "shape": [-1, 2]},
        {"name": "text", "datatype": "BYTES", "shape": [-1, 1]},
    ]

    def predict(self, feed):
        marker = feed["f32"][0, 0]
        if marker == 13:  # a bug: internals in the message must not reach the client
            raise KeyError("secret-13 in /srv/models/handler.py")
        if marker == 7:  # the model refuses what passed validation
            raise ValueError("secret-7 detail of the model")
        if marker == 9:  # a refusal the handler wants the client to read
            raise InvalidInput("f32 must not start with 9")
        return dict(feed)
'''

TYPED_INPUTS: dict[str, tuple[str, list[Any]]] = {
    "i8": ("INT8", [[-128, 127]]),
    "i64": ("INT64", [[2**62 + 1, -5]]),
    "f16": ("FP16", [[65504.0, 0.5]]),
    "f32": ("FP32", [[1.5, -2.25]]),
    "flag": ("BOOL", [[True, False]]),
    "text": ("BYTES", [["é"]]),
}
"""A valid request for the typed server: name -> (datatype, data); values at the edges
of their datatypes, so an echo that differs shows a coercion."""


@pytest.fixture(scope="session")
def typed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """A custom model with INT8, INT64, FP16, FP32, BOOL and BYTES inputs, batching on.

    It echoes its inputs; f32 starting with 13 raises KeyError, 7 ValueError and 9 the
    runtime's InvalidInput.
    """
    path = tmp_path_factory.mktemp("typed")
    (path / "handler.py").write_text(TYPED_HANDLER)
    with RuntimeProcess(path, "typed", "--max-batch-size", "8") as server:
        yield server


TypedBody = Callable[..., dict[str, Any]]


def _typed_body(**replace: dict[str, Any] | None) -> dict[str, Any]:
    """A V2 JSON body for the typed server; ``name=`` a dict updates that tensor, None
    drops it."""
    inputs = []
    for name, (datatype, data) in TYPED_INPUTS.items():
        tensor = {"name": name, "datatype": datatype, "shape": [1, len(data[0])], "data": data}
        change = replace.get(name, {})
        if change is not None:
            inputs.append({**tensor, **change})
    return {"inputs": inputs}


@pytest.fixture(scope="session")
def typed_body() -> TypedBody:
    """Builds V2 JSON bodies for the typed server (see ``_typed_body``)."""
    return _typed_body


def _typed_instance(**replace: list[Any]) -> dict[str, Any]:
    """A V1 instance (one row per input) for the typed server, some rows replaced."""
    return {name: replace.get(name, data[0]) for name, (_, data) in TYPED_INPUTS.items()}


@pytest.fixture(scope="session")
def typed_instance() -> Callable[..., dict[str, Any]]:
    """Builds V1 instances for the typed server (see ``_typed_instance``)."""
    return _typed_instance


CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "FP16": "fp32_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
GrpcRequest = Callable[..., Any]


def _grpc_request(model: str, doc: dict[str, Any], request_id: str = "") -> Any:
    """A ModelInferRequest (tritonclient's protobuf classes) with typed contents built
    from a V2 JSON body, nested data flattened."""
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=model, id=request_id)
    for tensor in doc["inputs"]:
        item = request.inputs.add(
            name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
        )
        values = list(np.asarray(tensor["data"], dtype=object).ravel())
        if tensor["datatype"] == "BYTES":
            values = [v.encode() for v in values]
        getattr(item.contents, CONTENTS_FIELD[tensor["datatype"]]).extend(values)
    return request


@pytest.fixture(scope="session")
def grpc_request() -> GrpcRequest:
    """Builds gRPC infer requests from V2 JSON bodies (see ``_grpc_request``)."""
    return _grpc_request
