"""A control plane for one test session: reuse a reachable one, or start and stop our own.

The pytest fixtures in ``tests/conftest.py`` are thin wrappers over this module, so the
same logic serves the e2e and chart tests and the demo. A cluster is reused only when
``KUBECONFIG`` names a single file whose API server answers ``/readyz``; otherwise a
fresh control plane starts in a temporary folder and is stopped when the session ends.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from kubeserve.devcluster import build, controlplane

if TYPE_CHECKING:  # the real node's modules (moto, boto3) load only when one is started
    from kubeserve.devcluster.gateway import Gateway
    from kubeserve.devcluster.modelstore import ModelStore
    from kubeserve.devcluster.node import RealNode

NAMESPACE_LABEL = "kubeserve.io/test"


def reachable(path: Path) -> bool:
    """Return whether the kubeconfig at ``path`` reaches a ready API server."""
    if not path.is_file():
        return False
    try:
        api = config.new_client_from_config(config_file=str(path))
    except (config.ConfigException, OSError, ValueError):
        return False
    try:
        api.configuration.retries = 0
        api.call_api("/readyz", "GET", _request_timeout=5, _preload_content=False)
    except Exception:  # any transport or HTTP failure means "not usable"
        return False
    finally:
        api.close()
    return True


def existing_kubeconfig() -> Path | None:
    """Return ``$KUBECONFIG`` when it is one file pointing at a reachable cluster."""
    value = os.environ.get("KUBECONFIG", "")
    if not value or os.pathsep in value:
        return None
    path = Path(value).expanduser()
    return path if reachable(path) else None


@contextmanager
def cluster(workdir: Path, crd_dirs: list[Path] | None = None) -> Iterator[Path]:
    """Yield a kubeconfig for a ready cluster with every CRD installed; stop what we started."""
    reused = existing_kubeconfig()
    started = None if reused is not None else controlplane.up(workdir, usual_ports=False)
    path = reused if reused is not None else controlplane.Layout(workdir).kubeconfig
    try:
        files = controlplane.repo_crd_files(crd_dirs)
        if reused is not None:
            files = build.crd_files() + files
        controlplane.install_crds(path, files)
        yield path
    finally:
        if started is not None:
            controlplane.down(workdir)


@dataclass
class RealNodeSession:
    """A test session's real node: its cluster and the S3 model store on the node address."""

    node: RealNode
    store: ModelStore
    gateway: Gateway | None
    """Traefik's ``kubeserve`` Gateway; None when Traefik is not built (tests skip)."""

    @property
    def kubeconfig(self) -> Path:
        """Return the admin kubeconfig."""
        return self.node.kubeconfig

    @property
    def address(self) -> str:
        """Return the node address (pods reach the host only there)."""
        return self.node.address

    @property
    def containerd_socket(self) -> Path:
        """Return the node's containerd socket (for ``ctr --address``)."""
        return self.node.containerd_socket

    def api_client(self) -> client.ApiClient:
        """Return a new API client for the node's cluster (the caller closes it)."""
        return config.new_client_from_config(config_file=str(self.kubeconfig))


class HostNotRestoredError(AssertionError):
    """The host differs from its snapshot after the real node stopped."""


@contextmanager
def real_node(workdir: Path) -> Iterator[RealNodeSession]:
    """Yield a Ready real node with the project's CRDs and a model store; restore the host.

    Its control plane is its own (``workdir``, ephemeral ports), so a KWOK cluster of the
    same test run is unaffected. On exit everything stops and the host is compared with
    a snapshot taken first: any difference raises :class:`HostNotRestoredError`.
    """
    from kubeserve.devcluster import gateway, hoststate, node
    from kubeserve.devcluster.modelstore import ModelStore

    parts = [] if gateway.available() else [gateway.GatewayPart()]
    before = hoststate.take([])
    real = node.up(workdir, node.image_archives(print), usual_ports=False, parts=parts)
    try:
        controlplane.install_crds(real.kubeconfig, controlplane.repo_crd_files())
        with ModelStore(real.address) as store:
            running = parts[0].gateway(real) if parts else None
            yield RealNodeSession(real, store, running)
    finally:
        leftovers = node.down(parts)
    left = leftovers + hoststate.differences(before, hoststate.take([]))
    if left:
        raise HostNotRestoredError("the host was not restored: " + "; ".join(left))


def namespace_name(test_name: str) -> str:
    """Return a valid, unique-per-test namespace name derived from a test's name."""
    digest = hashlib.sha256(f"{test_name}:{os.getpid()}:{os.urandom(4).hex()}".encode())
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:48].strip("-")
    return f"{slug or 'test'}-{digest.hexdigest()[:6]}"


def _not_found(exc: BaseException) -> bool:
    """Return whether ``exc`` is an API 404."""
    return isinstance(exc, ApiException) and exc.status == 404


def create_namespace(api: client.ApiClient, name: str, labels: dict[str, str] | None = None) -> str:
    """Create a namespace and wait until its default ServiceAccount exists (pods need it)."""
    core = client.CoreV1Api(api)
    meta = client.V1ObjectMeta(name=name, labels={NAMESPACE_LABEL: "true", **(labels or {})})
    core.create_namespace(client.V1Namespace(metadata=meta))
    Retrying(
        stop=stop_after_delay(30),
        wait=wait_fixed(0.2),
        retry=retry_if_exception(_not_found),
        reraise=True,
    )(core.read_namespaced_service_account, "default", name)
    return name


def delete_namespace(api: client.ApiClient, name: str) -> None:
    """Delete a namespace without waiting for its finalization."""
    try:
        client.CoreV1Api(api).delete_namespace(name, propagation_policy="Background")
    except ApiException as exc:
        if exc.status != 404:
            raise
