"""Replicas spread over nodes and zones: extra KWOK nodes with zone labels, the real scheduler.

KWOK manages every Node that carries its annotation (``controlplane.fake_node``), so a
test adds nodes by creating Node objects. Each test's nodes carry a taint and a label
named after its namespace; only its own InferenceService tolerates and selects them, so
pods of other tests never land there and its pods never land elsewhere.

Limits: the scheduler *prefers* spreading (``ScheduleAnyway``); these node shapes make
the default placement lopsided (one large zone, one small node in the other zone, so
resource scoring pulls both replicas into the large zone) and the test shows the
constraints outweigh that. With ``topologySpreadConstraints: []`` both replicas land in
the large zone on this cluster (checked by hand; not asserted, it is scheduler scoring).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from isvc_api import create, isvc, until
from kubernetes import client

from kubeserve.controller.process import OperatorProcess
from kubeserve.devcluster.controlplane import fake_node

POOL = "kubeserve.test/pool"
ZONE = "topology.kubernetes.io/zone"
BIG = {"cpu": "64", "memory": "256Gi", "pods": "110"}
SMALL = {"cpu": "1", "memory": "1Gi", "pods": "110"}
NodeFactory = Callable[[str, str | None, dict[str, str]], str]


@pytest.fixture
def kwok_nodes(api_client: client.ApiClient, namespace: str) -> Iterator[NodeFactory]:
    """Yield a factory of KWOK nodes for this test (name suffix, zone, resources)."""
    core = client.CoreV1Api(api_client)
    made: list[str] = []

    def make(suffix: str, zone: str | None, resources: dict[str, str]) -> str:
        node = fake_node(f"{namespace}-{suffix}")
        name: str = node["metadata"]["name"]
        node["metadata"]["labels"][POOL] = namespace
        if zone is not None:
            node["metadata"]["labels"][ZONE] = f"{namespace}-{zone}"
        node["spec"]["taints"] = [{"key": POOL, "value": namespace, "effect": "NoSchedule"}]
        node["status"]["allocatable"] = node["status"]["capacity"] = resources
        core.create_node(node)
        made.append(name)
        return name

    try:
        yield make
    finally:
        for name in made:
            core.delete_node(name)


def wait_nodes_ready(api: client.ApiClient, names: list[str]) -> None:
    """Until every node is Ready *and* carries no taint but the test's own pool taint.

    Ready alone is not enough: the node lifecycle controller removes the
    ``node.kubernetes.io/not-ready`` NoSchedule taint some time after the node reports
    Ready, and a pod scheduled in between can only go to the nodes already free of it
    (CI once saw both replicas on the first node that way).
    """

    def ready() -> bool:
        for name in names:
            node = client.CoreV1Api(api).read_node(name)
            conditions = node.status.conditions or []
            if not any(c.type == "Ready" and c.status == "True" for c in conditions):
                return False
            if any(taint.key != POOL for taint in node.spec.taints or []):
                return False
        return True

    until(ready, f"nodes {names} Ready and untainted", timeout=60)


def pooled_isvc(namespace: str, name: str, replicas: int) -> dict[str, Any]:
    """An InferenceService whose pods go only to this test's nodes."""
    return isvc(
        name,
        {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": "s3://models/spread/v1",
                    "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                },
                "minReplicas": replicas,
                "nodeSelector": {POOL: namespace},
                "tolerations": [
                    {"key": POOL, "operator": "Equal", "value": namespace, "effect": "NoSchedule"}
                ],
            }
        },
    )


def placement(api: client.ApiClient, namespace: str, name: str, count: int) -> list[str]:
    """Node names of the isvc's pods once `count` of them are scheduled."""
    core = client.CoreV1Api(api)
    selector = f"serving.kubeserve.io/inferenceservice={name}"
    nodes: list[str] = []

    def scheduled() -> bool:
        nonlocal nodes
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        nodes = sorted(p.spec.node_name for p in pods if p.spec.node_name)
        return len(nodes) == count

    until(scheduled, f"{count} pods of {name} scheduled", timeout=90)
    return nodes


def test_replicas_spread_over_nodes_and_zones(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    kwok_nodes: NodeFactory,
) -> None:
    """Two replicas land in two zones although resource scoring favours the big zone."""
    big = [kwok_nodes(f"a{i}", "a", BIG) for i in (1, 2)]
    small = kwok_nodes("b1", "b", SMALL)
    wait_nodes_ready(api_client, [*big, small])
    create(api_client, namespace, pooled_isvc(namespace, "spread", 2))
    nodes = placement(api_client, namespace, "spread", 2)
    assert small in nodes, f"both replicas in zone a: {nodes}"
    assert len(set(nodes)) == 2


def test_replicas_still_schedule_on_one_node_without_zones(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    kwok_nodes: NodeFactory,
) -> None:
    """ScheduleAnyway: three replicas on the one node, which has no zone label, all run."""
    solo = kwok_nodes("solo", None, BIG)
    wait_nodes_ready(api_client, [solo])
    create(api_client, namespace, pooled_isvc(namespace, "solo", 3))
    assert placement(api_client, namespace, "solo", 3) == [solo] * 3
