"""One test's corner of the real node: its namespace, models in S3, its operator, its pods.

Limits first: the operator is a local ``kubeserve run`` process scoped to the test's
namespace (the chart-in-a-pod path is tested elsewhere), told the Gateway's namespace so
its HTTPRoutes attach to the ``kubeserve`` Gateway. Models are uploaded under the
namespace's own prefix in the node's S3 store, all readable with one Secret.
Waits are watches or polls on live objects with generous timeouts (2 shared cores).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from kubeserve.controller.process import OperatorProcess
from kubeserve.controller.watching import condition, wait_isvc
from kubeserve.devcluster.gateway import GATEWAY_NAMESPACE
from kubeserve.devcluster.session import RealNodeSession
from kubeserve.images.containerd import ctr
from kubeserve_runtime import testing
from kubeserve_runtime.contract import (
    GROUP,
    HTTP_PORT,
    LABEL_ISVC,
    LABEL_REVISION,
    METRICS_PORT,
    PLURAL,
    VERSION,
)

SECRET = "model-store"
OPERATOR_ENV = {"KUBESERVE_OPERATOR_GATEWAY_NAMESPACE": GATEWAY_NAMESPACE}
READY_TIMEOUT = 360.0
"""Model download, Python start and probes of a few pods on 2 shared cores."""


def wait_until(check: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll ``check`` until true; raise TimeoutError naming ``what``."""
    testing.wait_until(check, what, timeout, every=0.5)


def predictor(uri: str, replicas: int = 1, model_format: str = "sklearn") -> dict[str, Any]:
    """Return a predictor spec for the model at ``uri`` with the store's Secret."""
    return {
        "model": {
            "modelFormat": {"name": model_format},
            "storageUri": uri,
            "storageSecretRef": {"name": SECRET},
        },
        "minReplicas": replicas,
        "maxReplicas": replicas,
    }


def has_condition(type_: str, status: str = "True") -> Callable[[dict[str, Any]], bool]:
    """Return a check that an InferenceService has condition ``type_`` at ``status``."""

    def check(obj: dict[str, Any]) -> bool:
        found = condition(obj, type_)
        return found is not None and found.get("status") == status

    return check


def revisions(obj: dict[str, Any]) -> dict[str, Any]:
    """Return status.revisions of an InferenceService (empty when absent)."""
    result: dict[str, Any] = (obj.get("status") or {}).get("revisions") or {}
    return result


def stable_revision(obj: dict[str, Any]) -> str | None:
    """Return the stable revision's hash (the runtime's ``model_version``), if any."""
    stable = revisions(obj).get("stable") or {}
    found = stable.get("hash")
    return None if found is None else str(found)


def canary(obj: dict[str, Any]) -> dict[str, Any]:
    """Return status.revisions.canary: ``hash``, ``trafficPercent``, ... (empty: none)."""
    result: dict[str, Any] = revisions(obj).get("canary") or {}
    return result


@dataclass
class NodeLab:
    """A namespace on the real node, its API client and the S3 store's models."""

    real: RealNodeSession
    namespace: str
    api: client.ApiClient
    workdir: Path

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    def upload(self, folder: Path, name: str) -> str:
        """Upload a model folder under this namespace's prefix; return its ``s3://`` URI.

        The first upload also creates the Secret every predictor here names.
        """
        stored = self.real.store.upload(folder, f"{self.namespace}/{name}")
        secrets = self.core.list_namespaced_secret(
            self.namespace, field_selector=f"metadata.name={SECRET}"
        ).items
        if not secrets:
            self.core.create_namespaced_secret(
                self.namespace, stored.secret(SECRET, self.namespace)
            )
        return stored.uri

    def create(self, name: str, spec: dict[str, Any]) -> None:
        """Create an InferenceService."""
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "InferenceService",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def patch(self, name: str, body: dict[str, Any]) -> None:
        """Merge-patch an InferenceService (null removes a field)."""
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, body
        )

    def get(self, name: str) -> dict[str, Any]:
        """Return an InferenceService as stored."""
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return obj

    def wait(
        self,
        name: str,
        done: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = READY_TIMEOUT,
    ) -> dict[str, Any]:
        """Watch an InferenceService until ``done(obj)``."""
        return wait_isvc(self.api, self.namespace, name, done, what, timeout)

    def service_url(self, service: str) -> str:
        """Return ``http://<ClusterIP>:8080`` of a Service (the host reaches ClusterIPs)."""
        ip = self.core.read_namespaced_service(service, self.namespace).spec.cluster_ip
        return f"http://{ip}:{HTTP_PORT}"

    def pods(self, name: str, revision: str | None = None) -> list[Any]:
        """Return the pods of an InferenceService (of one revision when given)."""
        selector = f"{LABEL_ISVC}={name}"
        if revision is not None:
            selector += f",{LABEL_REVISION}={revision}"
        items: list[Any] = self.core.list_namespaced_pod(
            self.namespace, label_selector=selector
        ).items
        return items

    def ready_pods(self, name: str, revision: str | None = None) -> list[Any]:
        """Return the Running, Ready, not terminating pods of an InferenceService."""
        return [
            pod
            for pod in self.pods(name, revision)
            if pod.metadata.deletion_timestamp is None and pod_ready(pod)
        ]

    def endpoints(self, service: str) -> set[str]:
        """Return the ready endpoint addresses of a Service (its EndpointSlices)."""
        slices = client.DiscoveryV1Api(self.api).list_namespaced_endpoint_slice(
            self.namespace, label_selector=f"kubernetes.io/service-name={service}"
        )
        return {
            address
            for item in slices.items
            for endpoint in item.endpoints or []
            if endpoint.conditions is None or endpoint.conditions.ready
            for address in endpoint.addresses
        }

    def scale(self, deployment: str, replicas: int) -> None:
        """Set a Deployment's replicas through its scale subresource (as an HPA does)."""
        client.AppsV1Api(self.api).patch_namespaced_deployment_scale(
            deployment, self.namespace, {"spec": {"replicas": replicas}}
        )

    def host(self, name: str) -> str:
        """Return the host of an InferenceService's status.url (the Gateway routes by it)."""
        url = (self.get(name).get("status") or {}).get("url") or ""
        host = urlsplit(url).hostname
        if not host:
            raise LookupError(f"{name} has no status.url yet")
        return host

    def route_weights(self, name: str) -> dict[str, int]:
        """Return Service -> weight of the HTTPRoute's default (last) rule."""
        route = self.custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", self.namespace, "httproutes", name
        )
        rule = route["spec"]["rules"][-1]
        return {ref["name"]: ref.get("weight", 1) for ref in rule["backendRefs"]}

    @contextmanager
    def operator(self) -> Iterator[OperatorProcess]:
        """Run the operator for this namespace; print its log tail when the block fails."""
        process = OperatorProcess(
            self.real.kubeconfig,
            self.workdir / "operator.log",
            namespaces=[self.namespace],
            env=OPERATOR_ENV,
        )
        with process:
            try:
                yield process
            except BaseException:
                print(process.log()[-6000:])
                raise


def pod_ready(pod: Any) -> bool:
    """Return whether a pod is Running with condition Ready=True."""
    conditions = pod.status.conditions or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    return bool(pod.status.phase == "Running" and ready)


def container_pid(socket: Path, pod: Any, container: str) -> int:
    """Return the host PID of a pod container's main process (from containerd's task list)."""
    (status,) = [s for s in pod.status.container_statuses if s.name == container]
    container_id = status.container_id.split("://", 1)[1]
    for line in ctr(socket, "tasks", "list").splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == container_id:
            return int(pid)
    raise LookupError(f"no task {container_id} for {pod.metadata.name}/{container}")


def kill_process(pid: int) -> None:
    """SIGKILL a host process and wait until it has exited (gone or a zombie)."""
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not _alive(pid), f"process {pid} exited", timeout=60)


def _alive(pid: int) -> bool:
    """Return whether ``pid`` runs (a zombie has already closed its sockets)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def served_requests(pod: Any, protocol: str = "v2") -> float:
    """Return a pod's ``kubeserve_requests_total`` for ``protocol``, read from the host."""
    text = httpx.get(f"http://{pod.status.pod_ip}:{METRICS_PORT}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "kubeserve_requests_total" and sample.labels.get("protocol") == protocol
    )
