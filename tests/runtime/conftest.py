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
