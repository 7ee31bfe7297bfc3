"""Leader election against the real control plane: two operators, one acts, takeover.

Two real ``kubeserve run --leader-elect`` processes contend for one Lease in the test's
namespace, with short lease timings so takeovers happen within seconds. A frozen leader
(SIGSTOP: to the cluster exactly a partitioned pod) loses the Lease to the standby,
which then reconciles; thawed, the old leader must stop by itself without writing. A
leader stopped with SIGTERM hands the Lease over at once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from isvc_api import create, get, isvc, predictor
from kubernetes import client, watch

from kubeserve.controller.elector import EXIT_LOST
from kubeserve.controller.process import OperatorProcess
from kubeserve.controller.watching import is_ready, wait_isvc

LEASE = "kubeserve-test"
TIMINGS = ["--lease-duration=8", "--renew-deadline=6", "--retry-period=1"]
LABEL = "serving.kubeserve.io/inferenceservice"

Start = Callable[[], OperatorProcess]


@pytest.fixture
def candidates(operator_factory: Callable[..., OperatorProcess], namespace: str) -> Start:
    """A starter of operators that contend for the Lease (stopped after the test)."""
    flags = [
        "--leader-elect",
        f"--leader-election-namespace={namespace}",
        f"--leader-election-id={LEASE}",
        *TIMINGS,
    ]
    return lambda: operator_factory(args=flags)


def health(proc: OperatorProcess) -> dict[str, Any]:
    """The candidate's /healthz answer: leader, identity, holder."""
    answer: dict[str, Any] = httpx.get(
        f"http://127.0.0.1:{proc.health_port}/healthz", timeout=5
    ).json()
    return answer


def wait_holder(api: client.ApiClient, namespace: str, holder: str, timeout: int = 90) -> Any:
    """Watch the Lease until `holder` holds it; return it."""
    leases = client.CoordinationV1Api(api)
    stream = watch.Watch()
    last = None
    for event in stream.stream(
        leases.list_namespaced_lease,
        namespace,
        field_selector=f"metadata.name={LEASE}",
        timeout_seconds=timeout,
    ):
        last = event["object"]
        if last.spec.holder_identity == holder:
            stream.stop()
            return last
    pytest.fail(f"{holder} did not get the Lease in {timeout}s; last: {last}")


def reconciles(proc: OperatorProcess) -> float:
    """Reconcile passes the process ran (its /metrics)."""
    return sum(
        value for (name, _), value in proc.metrics().items() if name == "kubeserve_reconcile_total"
    )


def footprint(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    """What an operator writes, comparably: children's specs (generation) and isvc status."""
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    found: dict[str, Any] = {}
    for deployment in apps.list_namespaced_deployment(namespace, label_selector=LABEL).items:
        found[f"Deployment/{deployment.metadata.name}"] = deployment.metadata.generation
    for service in core.list_namespaced_service(namespace, label_selector=LABEL).items:
        found[f"Service/{service.metadata.name}"] = service.spec.to_dict()
    for name in ("first", "second"):
        found[f"InferenceService/{name}"] = get(api, namespace, name).get("status")
    return found


def ready_isvc(api: client.ApiClient, namespace: str, name: str) -> None:
    create(api, namespace, isvc(name, {"predictor": predictor(f"s3://m/{name}")}))
    wait_isvc(api, namespace, name, is_ready, "Ready", timeout=120)


def test_standby_takes_over_from_a_frozen_leader_which_then_exits_without_acting(
    api_client: client.ApiClient, namespace: str, candidates: Start
) -> None:
    leader = candidates()
    first_id = health(leader)["identity"]
    wait_holder(api_client, namespace, first_id)
    standby = candidates()
    state = health(standby)
    assert (state["leader"], state["holder"]) == (False, first_id)

    ready_isvc(api_client, namespace, "first")
    assert reconciles(leader) > 0
    assert reconciles(standby) == 0
    assert standby.writes() == 0
    assert standby.metrics()[("kubeserve_leader", ())] == 0

    # Freeze the leader, as a partition or a stalled node would: it cannot renew.
    leader.send(signal.SIGSTOP)
    wait_holder(api_client, namespace, health(standby)["identity"])
    ready_isvc(api_client, namespace, "second")
    assert reconciles(standby) > 0
    assert standby.metrics()[("kubeserve_leader", ())] == 1
    before = footprint(api_client, namespace)

    # Thawed, the old leader finds its renew deadline long past: it stops at once.
    leader.send(signal.SIGCONT)
    assert leader.wait(timeout=60) == EXIT_LOST
    assert "leadership lost" in leader.log()
    assert footprint(api_client, namespace) == before
    lease = client.CoordinationV1Api(api_client).read_namespaced_lease(LEASE, namespace)
    assert lease.spec.holder_identity == health(standby)["identity"]


def test_sigterm_hands_the_lease_over_at_once(
    api_client: client.ApiClient, namespace: str, candidates: Start
) -> None:
    leader = candidates()
    first_id = health(leader)["identity"]
    held = wait_holder(api_client, namespace, first_id)
    standby = candidates()
    ready_isvc(api_client, namespace, "first")

    leader.send(signal.SIGTERM)
    assert leader.wait(timeout=60) == 0
    assert "released" in leader.log()
    taken = wait_holder(api_client, namespace, health(standby)["identity"])
    assert taken.spec.lease_transitions == held.spec.lease_transitions + 1
    ready_isvc(api_client, namespace, "second")
    assert reconciles(standby) > 0
