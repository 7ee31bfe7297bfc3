"""Fixtures shared by every test folder.

Cluster fixtures (any test using them is marked ``cluster`` automatically):
- ``kubeconfig`` (session): path of an admin kubeconfig for a real control plane. It is
  ``$KUBECONFIG`` when that reaches a ready cluster, otherwise a fresh local control plane
  (``kubeserve.devcluster``) started once per run and stopped at the end. The project's
  crds/ plus the Gateway API and ServiceMonitor CRDs are installed, and ``KUBECONFIG``
  is set for the session so in-process clients (kopf, kubernetes) find it too.
- ``api_client`` (session): a ``kubernetes.client.ApiClient`` for that cluster.
- ``namespace`` (function): a fresh namespace per test, deleted afterwards.
- ``kubectl_binary`` / ``helm_binary`` (session): the cached kubectl and helm binaries
  (built on first use; they need no cluster).

When any selected test is marked ``cluster``, missing binaries are built right after
collection (a cold build takes minutes, longer than one test's timeout allows).

``kubeserve.devcluster`` is imported inside the fixtures, so unit tests never pay for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

CLUSTER_FIXTURES = frozenset({"kubeconfig", "api_client", "namespace"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a cluster fixture with ``cluster``."""
    for item in items:
        if CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build missing control plane binaries before the first test, outside per-test timeouts."""
    if any(item.get_closest_marker("cluster") for item in session.items):
        from kubeserve.devcluster import build

        build.ensure_built()


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Yield the kubeconfig of a ready control plane with the CRDs installed."""
    from kubeserve.devcluster import session

    with (
        session.cluster(tmp_path_factory.mktemp("cluster")) as path,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("KUBECONFIG", str(path))
        yield path


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[ApiClient]:
    """Yield a Kubernetes API client for the session's cluster."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(api_client: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """Yield a fresh namespace for one test; delete it afterwards."""
    from kubeserve.devcluster import session

    name = session.create_namespace(api_client, session.namespace_name(request.node.name))
    try:
        yield name
    finally:
        session.delete_namespace(api_client, name)


@pytest.fixture(scope="session")
def kubectl_binary() -> Path:
    """Return the cached kubectl (built if missing)."""
    from kubeserve.devcluster import build

    build.ensure_built()
    return build.binary("kubectl")


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    """Return the cached helm (built if missing)."""
    from kubeserve.devcluster import build

    build.ensure_built()
    return build.binary("helm")
