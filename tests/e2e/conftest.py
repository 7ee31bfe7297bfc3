"""The ``real_node`` session fixture: a control plane of its own with a real kubelet node.

A thin wrapper over :func:`kubeserve.devcluster.session.real_node`: its own state folder
and ephemeral ports (the KWOK suite's cluster is untouched), the API server on the node
address, moto's S3 server there too. It skips with the host's own reasons where a real
node cannot run (not root, packages missing, a clashing route, a host name that does not
resolve to loopback); starting it while another real node runs on the machine is an
error naming that node. At the end it stops everything and fails if the host differs
from the snapshot taken before (links, netns, mounts, chains, sysctls, cgroups).

Every test using it is marked ``realnode``; tests marked ``realnode`` that start a node
of their own run first, before the session's node exists (one real node per machine).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
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
