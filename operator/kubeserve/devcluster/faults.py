"""Control plane faults for tests: stop and restart components; slow or refuse writes.

Limits first: restarts work only on a control plane started by :func:`controlplane.up`
(its ``state.json`` records each process's command line); a reused ``$KUBECONFIG``
cluster raises :class:`controlplane.ClusterError`. Slow and conflicting writes come
from a real validating admission webhook served from this process on loopback, so the
API server itself delays the write or answers it with 409, exactly as a client would
see it. Only writes whose ``fieldManager`` is the one named (the operator's server-side
applies) are touched: each waits ``delay`` seconds, and the first ``conflicts`` of them
are refused. A delay here, unlike a latency toxic in toxiproxy, never has to be removed
from a connection that died meanwhile.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from kubernetes import client
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from kubeserve.devcluster import certs, controlplane, ports, processes


@contextmanager
def stopped(root: Path, *names: str, grace: float = 10.0) -> Iterator[None]:
    """Stop the named components of the cluster in `root`; start them again on exit.

    They stop in the order given (SIGTERM, SIGKILL after `grace` seconds; 0 = a crash)
    and start again in reverse order with their recorded command lines, each waited for
    until healthy and recorded in state.json, so ``down`` stops the new processes.
    """
    cluster = controlplane.Cluster.load(root)
    if cluster is None:
        raise controlplane.ClusterError(f"no control plane was started from {root}")
    by_name = {proc.name: proc for proc in cluster.processes}
    targets = [by_name[name] for name in names]
    processes.stop_all(targets, grace=grace)
    try:
        yield
    finally:
        for old in reversed(targets):
            new = processes.start(old.name, list(old.argv), Path(old.log), old.health)
            cluster.processes[cluster.processes.index(old)] = new
            cluster.save()
            controlplane.wait_healthy(cluster.layout, new)


def _review(uid: str, conflict: bool) -> dict[str, Any]:
    """An AdmissionReview answer: allowed, or refused with 409 Conflict."""
    response: dict[str, Any] = {"uid": uid, "allowed": not conflict}
    if conflict:
        response["status"] = {
            "code": 409,
            "reason": "Conflict",
            "message": "injected conflict (kubeserve fault test)",
        }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


class AdmissionFaults:
    """Delays writes by `field_manager` in `namespace`; refuses the first `conflicts` (409).

    ``delay`` and ``conflicts`` may be changed while it runs (``delay = 0`` lets a slowed
    operator go at full speed again).
    """

    PROBE_MANAGER = "kubeserve-fault-probe"

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        *,
        field_manager: str,
        conflicts: int = 0,
        delay: float = 0.0,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.field_manager = field_manager
        self.conflicts = conflicts
        self.delay = delay
        self.refused = 0
        self.probes = 0
        self.name = f"kubeserve-faults-{namespace}"
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def decide(self, review: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """The answer to one AdmissionReview and how long to hold it (counts what it saw)."""
        request = review.get("request") or {}
        manager = (request.get("options") or {}).get("fieldManager")
        ours = manager == self.field_manager
        with self._lock:
            if manager == self.PROBE_MANAGER:
                self.probes += 1
            conflict = ours and self.conflicts > 0
            if conflict:
                self.conflicts -= 1
                self.refused += 1
        return _review(str(request.get("uid", "")), conflict), self.delay if ours else 0.0

    def _serve(self, ca: certs.KeyPair) -> int:
        """Start the HTTPS server on a free loopback port; return the port."""
        leaf = certs.issue(ca, ports.HOST, ip_addresses=(ports.HOST,), server=True)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder) / "tls.crt", Path(folder) / "tls.key"
            cert.write_bytes(leaf.cert)
            key.write_bytes(leaf.key)
            context.load_cert_chain(cert, key)
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                answer, delay = webhook.decide(json.loads(self.rfile.read(length) or b"{}"))
                time.sleep(delay)  # the injected slowness itself, not a wait for something
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((ports.HOST, 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return int(self._server.server_address[1])

    def start(self, timeout: float = 30.0) -> Self:
        """Serve, register the webhook, and wait until the API server calls it."""
        ca = certs.certificate_authority("kubeserve-fault-webhook-ca")
        port = self._serve(ca)
        hook = {
            "name": "writes.faults.kubeserve.io",
            "clientConfig": {
                "url": f"https://{ports.HOST}:{port}/",
                "caBundle": base64.b64encode(ca.cert).decode(),
            },
            "rules": [
                {
                    "operations": ["CREATE", "UPDATE"],
                    "apiGroups": ["*"],
                    "apiVersions": ["*"],
                    "resources": ["*"],
                    "scope": "Namespaced",
                }
            ],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}},
            "failurePolicy": "Ignore",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5,
        }
        client.AdmissionregistrationV1Api(self.api).create_validating_webhook_configuration(
            {"metadata": {"name": self.name}, "webhooks": [hook]}
        )
        Retrying(
            stop=stop_after_delay(timeout),
            wait=wait_fixed(0.2),
            retry=retry_if_result(lambda called: not called),
            reraise=True,
        )(self._probe)
        return self

    def _probe(self) -> bool:
        """Send a dry-run write the webhook sees; True once it has seen one."""
        before = self.probes
        client.CoreV1Api(self.api).create_namespaced_config_map(
            self.namespace,
            {"metadata": {"generateName": "fault-probe-"}},
            dry_run="All",
            field_manager=self.PROBE_MANAGER,
        )
        return self.probes > before

    def stop(self) -> None:
        """Unregister the webhook and stop serving."""
        try:
            client.AdmissionregistrationV1Api(self.api).delete_validating_webhook_configuration(
                self.name
            )
        finally:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()


@contextmanager
def admission_faults(
    api: client.ApiClient,
    namespace: str,
    *,
    field_manager: str,
    conflicts: int = 0,
    delay: float = 0.0,
) -> Iterator[AdmissionFaults]:
    """:class:`AdmissionFaults` registered (and called by the API server) in a ``with``."""
    hook = AdmissionFaults(
        api, namespace, field_manager=field_manager, conflicts=conflicts, delay=delay
    ).start()
    try:
        yield hook
    finally:
        hook.stop()
