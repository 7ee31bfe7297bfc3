"""TLS on a real runtime process: REST (httpx) and gRPC (grpc's own TLS) serve the files
they were given, pick up rotated files without a restart, require client certificates
under mTLS (probes excepted), and refuse TLS 1.1. Certificates are made here with
``cryptography`` (through the control plane's PKI helpers). gRPC calls go through grpc's
TLS channel credentials with tritonclient's OIP stubs (the runtime's own generated
module would clash with them in one process: the same proto package)."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from kubeserve.devcluster import certs
from kubeserve_runtime.testing import RuntimeProcess, wait_until

ROW = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}


def write_pair(folder: Path, stem: str, pair: certs.KeyPair) -> tuple[Path, Path]:
    """Write a certificate and key as ``stem.pem`` / ``stem.key``; return both paths."""
    cert, key = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert.write_bytes(pair.cert)
    key.write_bytes(pair.key)
    return cert, key


def serving_pair(ca: certs.KeyPair, name: str) -> certs.KeyPair:
    """A serving certificate for loopback (IP and ``localhost``) signed by ``ca``."""
    return certs.issue(ca, name, dns_names=("localhost",), ip_addresses=("127.0.0.1",), server=True)


def replace_atomically(path: Path, data: bytes) -> None:
    """Replace a file's content in one rename, as a Secret volume update does."""
    temporary = path.with_suffix(".new")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def served_certificate(port: int) -> bytes:
    """The DER certificate the REST port presents now (no verification: we compare)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def der(pem: bytes) -> bytes:
    """A PEM certificate as DER."""
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def grpc_ready(server: RuntimeProcess, root: bytes, client: certs.KeyPair | None = None) -> bool:
    """ServerReady over a fresh TLS channel trusting only ``root`` (optionally with a
    client certificate); False when the handshake or the call fails."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root,
        private_key=client.key if client else None,
        certificate_chain=client.cert if client else None,
    )
    with grpc.secure_channel(server.grpc_target, credentials) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        try:
            return bool(stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready)
        except grpc.RpcError:
            return False


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, certs.KeyPair]:
    """Two CAs, a serving certificate from the first, client certificates from both."""
    ca = certs.certificate_authority("kubeserve-tls-test-ca")
    other = certs.certificate_authority("kubeserve-tls-other-ca")
    return {
        "ca": ca,
        "other": other,
        "server": serving_pair(ca, "runtime"),
        "client": certs.issue(ca, "caller", client=True),
        "stranger": certs.issue(other, "stranger", client=True),
    }


def serve_args(folder: Path, pki: dict[str, certs.KeyPair], mutual: bool) -> list[str]:
    """Write the serving pair and the CA (``ca.pem``) into ``folder``; return the TLS
    flags (with the CA as client CA when ``mutual``)."""
    cert, key = write_pair(folder, "tls", pki["server"])
    (folder / "ca.pem").write_bytes(pki["ca"].cert)
    args = ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    return [*args, "--tls-client-ca-file", str(folder / "ca.pem")] if mutual else args


def serving(
    sklearn_dir: Path, pki: dict[str, certs.KeyPair], folder: Path, mutual: bool
) -> Iterator[RuntimeProcess]:
    """Run the iris model over TLS from files in ``folder`` (mTLS when ``mutual``)."""
    args = serve_args(folder, pki, mutual=mutual)
    with RuntimeProcess(sklearn_dir, "iris", *args, tls_ca=folder / "ca.pem") as server:
        yield server


@pytest.fixture(scope="module")
def tls_server(
    sklearn_dir: Path, pki: dict[str, certs.KeyPair], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeProcess]:
    """The iris model over TLS (no client certificates)."""
    yield from serving(sklearn_dir, pki, tmp_path_factory.mktemp("tls"), mutual=False)


@pytest.fixture(scope="module")
def mtls_server(
    sklearn_dir: Path, pki: dict[str, certs.KeyPair], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeProcess]:
    """The iris model over TLS, requiring client certificates from the first CA."""
    yield from serving(sklearn_dir, pki, tmp_path_factory.mktemp("mtls"), mutual=True)


def test_rest_grpc_and_metrics_over_tls(
    tls_server: RuntimeProcess, pki: dict[str, certs.KeyPair]
) -> None:
    """REST and gRPC answer over TLS to clients trusting the CA; metrics stay plain HTTP;
    a clear-text request to the TLS port gets no answer."""
    ca = pki["ca"].cert
    context = ssl.create_default_context(cadata=ca.decode())
    assert tls_server.url.startswith("https://")
    with httpx.Client(verify=context) as client:
        answer = client.post(f"{tls_server.url}/v2/models/iris/infer", json=ROW)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] in ([0], [1], [2])
    assert grpc_ready(tls_server, ca)
    assert not grpc_ready(tls_server, pki["other"].cert), "a client trusting another CA"
    assert "kubeserve_requests_total" in httpx.get(tls_server.metrics_url).text
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{tls_server.http_port}/v2/health/ready")


def test_tls_1_1_is_refused(tls_server: RuntimeProcess, tmp_path: Path) -> None:
    """A client that offers only TLS 1.1 is refused by both ports, which complete TLS 1.2
    handshakes; the same client completes a TLS 1.1 handshake with a server that allows
    it (so the refusal is the runtime's, not the client's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 itself is deprecated
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        lenient = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        lenient.set_ciphers("DEFAULT:@SECLEVEL=0")
        lenient.minimum_version = ssl.TLSVersion.TLSv1_1

    tls12 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls12.check_hostname = False
    tls12.verify_mode = ssl.CERT_NONE
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    tls12.set_alpn_protocols(["h2", "http/1.1"])

    def handshake(port: int, client: ssl.SSLContext) -> str:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client.wrap_socket(raw) as tls,
        ):
            return str(tls.version())

    for port in (tls_server.http_port, tls_server.grpc_port):
        # uvloop and grpc close without sending the alert, so the client reads an EOF
        with pytest.raises(ssl.SSLError, match=r"PROTOCOL_VERSION|UNEXPECTED_EOF"):
            handshake(port, old)
        assert handshake(port, tls12) == "TLSv1.2"

    pair = serving_pair(certs.certificate_authority("lenient"), "lenient")
    lenient.load_cert_chain(*write_pair(tmp_path, "lenient", pair))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        accepted: list[str] = []

        def serve_one() -> None:
            conn, _ = listener.accept()
            with lenient.wrap_socket(conn, server_side=True) as tls:
                accepted.append(str(tls.version()))

        thread = threading.Thread(target=serve_one)
        thread.start()
        assert handshake(listener.getsockname()[1], old) == "TLSv1.1"
        thread.join()
    assert accepted == ["TLSv1.1"]


def test_rotated_files_are_served_without_a_restart(
    sklearn_dir: Path, pki: dict[str, certs.KeyPair], tmp_path: Path
) -> None:
    """Files replaced under a running server (a new CA and certificate, as cert-manager
    rotation can bring) are served by REST and gRPC from the next handshakes; a
    half-written rotation (a key that does not match) keeps the previous certificate."""
    args = serve_args(tmp_path, pki, mutual=False)
    cert, key = tmp_path / "tls.pem", tmp_path / "tls.key"
    with RuntimeProcess(
        sklearn_dir, "iris", *args, "--tls-reload-seconds", "0.2", tls_ca=tmp_path / "ca.pem"
    ) as server:
        assert served_certificate(server.http_port) == der(pki["server"].cert)
        new_ca = certs.certificate_authority("kubeserve-rotated-ca")
        rotated = serving_pair(new_ca, "runtime-rotated")

        replace_atomically(cert, rotated.cert)  # the key still belongs to the old cert
        wait_until(lambda: "keeping the previous TLS certificate" in server.log, "a refusal")
        assert served_certificate(server.http_port) == der(pki["server"].cert)

        replace_atomically(key, rotated.key)
        wait_until(
            lambda: served_certificate(server.http_port) == der(rotated.cert), "REST rotation"
        )
        wait_until(lambda: grpc_ready(server, new_ca.cert), "gRPC rotation")
        assert server.log.count("keeping the previous TLS certificate") == 1, "logged once"
        assert not grpc_ready(server, pki["ca"].cert), "the old certificate is gone"
        with httpx.Client(verify=ssl.create_default_context(cadata=new_ca.cert.decode())) as c:
            assert c.post(f"{server.url}/v2/models/iris/infer", json=ROW).status_code == 200


def test_mtls_requires_a_client_certificate(
    mtls_server: RuntimeProcess, pki: dict[str, certs.KeyPair], tmp_path: Path
) -> None:
    """Under mTLS: a client with a certificate from the CA is served (REST and gRPC);
    without one REST answers 403 except the probes and gRPC refuses the handshake; a
    certificate from another CA fails the handshake on both."""
    ca = pki["ca"].cert.decode()
    infer = f"{mtls_server.url}/v2/models/iris/infer"
    paths = {}
    for name in ("client", "stranger"):
        paths[name] = write_pair(tmp_path, name, pki[name])

    with_cert = ssl.create_default_context(cadata=ca)
    with_cert.load_cert_chain(*paths["client"])
    with httpx.Client(verify=with_cert) as client:
        assert client.post(infer, json=ROW).status_code == 200

    with httpx.Client(verify=ssl.create_default_context(cadata=ca)) as client:
        refused = client.post(infer, json=ROW)
        assert refused.status_code == 403
        assert refused.json() == {"error": "a client certificate is required"}
        assert client.get(f"{mtls_server.url}/v2/health/ready").status_code == 200
        assert client.get(f"{mtls_server.url}/v2/health/live").status_code == 200
        assert client.get(f"{mtls_server.url}/v2/models/iris").status_code == 403

    stranger = ssl.create_default_context(cadata=ca)
    stranger.load_cert_chain(*paths["stranger"])
    with httpx.Client(verify=stranger) as client, pytest.raises(httpx.TransportError):
        client.get(f"{mtls_server.url}/v2/health/ready")

    assert grpc_ready(mtls_server, pki["ca"].cert, pki["client"])
    assert not grpc_ready(mtls_server, pki["ca"].cert)
    assert not grpc_ready(mtls_server, pki["ca"].cert, pki["stranger"])


def test_unusable_files_stop_the_start(sklearn_dir: Path, tmp_path: Path) -> None:
    """A missing key file, or a certificate without a key, is refused at start (exit 2)
    with the reason."""
    ca = certs.certificate_authority("start-ca")
    cert, key = write_pair(tmp_path, "tls", serving_pair(ca, "start"))
    key.unlink()
    missing = RuntimeProcess(
        sklearn_dir, "iris", "--tls-cert-file", str(cert), "--tls-key-file", str(key)
    )
    half = RuntimeProcess(sklearn_dir, "iris", "--tls-cert-file", str(cert))
    for process, reason in (
        (missing, f"cannot read {key}"),
        (half, "tls_cert_file and tls_key_file must be set together"),
    ):
        try:
            process.start(wait_ready=False)
            assert process.process is not None
            assert process.process.wait(timeout=60) == 2
            assert reason in process.log
        finally:
            process.close()


def test_a_rotated_client_ca_replaces_the_old_one(
    sklearn_dir: Path, pki: dict[str, certs.KeyPair], tmp_path: Path
) -> None:
    """Under mTLS, a client CA replaced under the running server is the only one trusted
    from then on, by REST and gRPC: the old CA's clients are refused, the new CA's are
    served."""
    args = serve_args(tmp_path, pki, mutual=True)
    ca = pki["ca"].cert.decode()
    contexts = {}
    for name in ("client", "stranger"):
        contexts[name] = ssl.create_default_context(cadata=ca)
        contexts[name].load_cert_chain(*write_pair(tmp_path, name, pki[name]))

    def served(name: str) -> bool:
        try:
            with httpx.Client(verify=contexts[name]) as client:
                return client.get(f"{server.url}/v2/models/iris").status_code == 200
        except httpx.TransportError:
            return False

    with RuntimeProcess(
        sklearn_dir, "iris", *args, "--tls-reload-seconds", "0.2", tls_ca=tmp_path / "ca.pem"
    ) as server:
        assert served("client")
        assert not served("stranger")
        replace_atomically(tmp_path / "ca.pem", pki["other"].cert)
        wait_until(lambda: served("stranger"), "the new client CA")
        assert not served("client")
        assert grpc_ready(server, pki["ca"].cert, pki["stranger"])
        assert not grpc_ready(server, pki["ca"].cert, pki["client"])
