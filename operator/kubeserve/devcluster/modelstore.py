"""An S3-compatible model store on the real node's address, so pods download ``s3://`` URIs.

Limits first: moto's S3 server (the one the runtime's storage tests use), in this
process, plain HTTP, fixed test credentials, one bucket, objects kept in memory: for
tests and the demo only. It listens on the node address, the one host address pods can
reach (:mod:`~kubeserve.devcluster.hostnet`), so a predictor's storage initializer
downloads through real S3 calls from inside its pod. Pods receive the endpoint and the
credentials the way users give them: a Secret named by ``storageSecretRef``, mounted into
the init container (``AWS_ENDPOINT_URL`` and the standard ``AWS_*`` keys).
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import boto3
from moto.server import ThreadedMotoServer

BUCKET = "models"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "kubeserve-test",
    "AWS_SECRET_ACCESS_KEY": "kubeserve-secret",
    "AWS_REGION": "us-east-1",
}


@dataclass(frozen=True)
class StoredModel:
    """A model folder uploaded to the store: its URI and what a pod needs to download it."""

    uri: str
    secret_data: dict[str, str]
    """The keys of the Secret that ``storageSecretRef`` names (endpoint and credentials)."""

    def secret(self, name: str, namespace: str) -> dict[str, Any]:
        """Return the Secret manifest holding :attr:`secret_data`."""
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque",
            "stringData": self.secret_data,
        }

    def apply_to(self, isvc: dict[str, Any], secret_name: str) -> dict[str, Any]:
        """Return ``isvc`` with its predictor's model pointed at this URI and Secret."""
        model = isvc["spec"]["predictor"]["model"]
        spec = {**isvc["spec"], "predictor": {**isvc["spec"]["predictor"]}}
        spec["predictor"]["model"] = {
            **model,
            "storageUri": self.uri,
            "storageSecretRef": {"name": secret_name},
        }
        return {**isvc, "spec": spec}


def _free_port(address: str) -> int:
    """Return a port that is free on ``address`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


class ModelStore:
    """moto's S3 server on ``address`` with one bucket; a context manager."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.port = 0
        self._server: ThreadedMotoServer | None = None

    @property
    def endpoint(self) -> str:
        """Return the S3 endpoint URL (reachable from the host and from pods)."""
        return f"http://{self.address}:{self.port}"

    def client(self) -> Any:
        """Return a boto3 S3 client for the store."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=CREDENTIALS["AWS_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def start(self) -> Self:
        """Start the server and create the bucket."""
        # werkzeug logs every request on stderr: the storage initializer's own logs say
        # what it fetched, and the demo's output stays readable.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.port = _free_port(self.address)
        self._server = ThreadedMotoServer(ip_address=self.address, port=self.port, verbose=False)
        self._server.start()
        self.client().create_bucket(Bucket=BUCKET)
        return self

    def stop(self) -> None:
        """Stop the server (its objects are gone)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def upload(self, folder: Path, prefix: str) -> StoredModel:
        """Upload every file under ``folder`` below ``prefix``; return its URI and Secret data."""
        client = self.client()
        files = sorted(path for path in folder.rglob("*") if path.is_file())
        if not files:
            raise ValueError(f"no files under {folder}")
        for path in files:
            key = f"{prefix.strip('/')}/{path.relative_to(folder).as_posix()}"
            client.upload_file(str(path), BUCKET, key)
        secret = {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}
        return StoredModel(f"s3://{BUCKET}/{prefix.strip('/')}", secret)
