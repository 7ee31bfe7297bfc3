"""The ``real_node`` session fixture: a control plane of its own with a real kubelet node.

A thin wrapper over :func:`kubeserve.devcluster.session.real_node`: its own state folder
and ephemeral ports (the KWOK suite's cluster is untouched), the API server on the node
address, moto's S3 server there too. It skips with the host's own reasons where a real
node cannot run (not root, packages missing, a clashing route, a host name that does not
resolve to loopback); starting it while another real node runs on the machine is an
error naming that node. At the end it stops everything and fails if the host differs
from the snapshot taken before (links, netns, mounts, chains, sysctls, cgroups).

``node_namespace`` gives a test a fresh namespace on that node; ``runtime_image`` skips a
test when the serving image was not built (``kubeserve image build runtime``);
``lab`` bundles them with an API client (``node_lab.NodeLab``); ``iris_model`` is
example 01's trained model folder, made once per session; ``gateway_url`` is the base URL
of the node's Gateway (skipped when it runs none).

Every test using it is marked ``realnode``; tests marked ``realnode`` that start a node
of their own run first, before the session's node exists (one real node per machine).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from node_lab import NodeLab

    from kubeserve.devcluster.session import RealNodeSession


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``real_node`` users; move tests with a node of their own before them."""
    for item in items:
        if "real_node" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realnode)
    own_node = [
        item
        for item in items
        if item.get_closest_marker("realnode")
        and "real_node" not in getattr(item, "fixturenames", ())
    ]
    for item in own_node:
        items.remove(item)
    items[:0] = own_node


@pytest.fixture(scope="session")
def real_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNodeSession]:
    """Yield a Ready real node with the project's CRDs; restore the host afterwards."""
    from kubeserve.devcluster import node, session

    reasons = node.host_reasons()
    if reasons:
        pytest.skip("no real node on this host: " + "; ".join(reasons))
    with session.real_node(tmp_path_factory.mktemp("realnode")) as real:
        yield real


@pytest.fixture
def node_namespace(real_node: RealNodeSession, request: pytest.FixtureRequest) -> Iterator[str]:
    """Yield a fresh namespace in the real node's cluster."""
    from kubeserve.devcluster import session

    api = real_node.api_client()
    try:
        name = session.create_namespace(api, session.namespace_name(request.node.name))
        yield name
        session.delete_namespace(api, name)
    finally:
        api.close()


@pytest.fixture(scope="session")
def runtime_image(real_node: RealNodeSession) -> str:
    """Return the serving image's name in the node's containerd; skip when it is absent.

    Asked of containerd, not of the archive: the image cache is shared by every checkout
    on the machine and prunes archives other checkouts built, possibly after this
    session's node imported this checkout's.
    """
    from kubeserve.config import OperatorConfig
    from kubeserve.images.containerd import ctr

    name = OperatorConfig().runtime_image
    if name not in ctr(real_node.containerd_socket, "images", "list", "--quiet").split():
        pytest.skip(f"no {name} on the node: run `kubeserve image build runtime` first")
    return name


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a folder holding example 01's trained iris classifier."""
    out = tmp_path_factory.mktemp("iris-model")
    maker = Path(__file__).resolve().parents[2] / "examples" / "01-sklearn-iris" / "make_model.py"
    subprocess.run([sys.executable, str(maker), "--out", str(out)], check=True)
    return out


@pytest.fixture
def lab(
    real_node: RealNodeSession, node_namespace: str, runtime_image: str, tmp_path: Path
) -> Iterator[NodeLab]:
    """Yield the test's namespace on the real node with an API client and its models."""
    from node_lab import NodeLab

    api = real_node.api_client()
    try:
        yield NodeLab(real_node, node_namespace, api, tmp_path)
    finally:
        api.close()


@pytest.fixture
def gateway_url(real_node: RealNodeSession) -> str:
    """Return the base URL of the real node's Gateway; skip when it runs none."""
    from kubeserve.devcluster import gateway

    if real_node.gateway is None:
        pytest.skip(f"the real node runs no Gateway: {gateway.available()}")
    return real_node.gateway.url


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A fresh folder with a short path, removed afterwards.

    For a cluster folder a test starts a real node in: kubelet's sockets must fit a unix
    socket path (107 characters), which pytest's own tmp_path
    (``pytest-of-USER/pytest-NNN/test_name0/...``) can exceed.
    """
    folder = Path(tempfile.mkdtemp(prefix="ks-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
