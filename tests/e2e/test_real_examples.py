"""Every example in examples/ served by real pods, reconciled by the operator that
``helm install`` of the repository's chart runs in a pod.

Per example (one deployment, shared by its tests): its own make_model.py trains the
model(s), they go to the node's S3 store, and its isvc.yaml is applied with only the
storageUri(s) and the store's Secret changed. Once Ready, each component answers
through its ClusterIP Service from the host (V1 ``:predict``, V2 REST infer and V2 gRPC
ModelInfer with tritonclient) and through the Gateway by the Host of ``status.url``
(V1 and V2 REST; a variant's header match picks the variant). The answers are checked
(the class of known flowers, the output shapes, which revision answered), not only the
status. The split of weighted traffic is measured by the rollout tests, not here.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
import realpods
from kubernetes import client

from kubeserve.controller.watching import is_ready, wait_isvc
from kubeserve.devcluster.session import RealNodeSession
from kubeserve_runtime.contract import GROUP, PLURAL, VERSION

SERVICE_TIMEOUT = 120.0
"""kube-proxy writes a Ready pod's endpoint into the node's rules shortly after."""
ROUTE_TIMEOUT = 90.0
"""Traefik programs a new HTTPRoute a few seconds after the operator writes it."""

T = TypeVar("T")


@pytest.fixture(scope="module")
def operator_release(real_node: RealNodeSession) -> Iterator[realpods.OperatorRelease]:
    """The chart installed with helm, its operator pod Ready; uninstalled afterwards."""
    release = realpods.install_operator(real_node)
    yield release
    realpods.uninstall_operator(real_node, release)


@dataclass(frozen=True)
class Deployed:
    """One example applied and Ready: where its components answer."""

    example: realpods.Example
    namespace: str
    isvc: dict[str, Any]
    services: dict[str, str]
    """Component variant -> its Service's ClusterIP."""

    def http(self, variant: str) -> str:
        """Return the base URL of a component's Service."""
        return f"http://{self.services[variant]}:{realpods.HTTP_PORT}"


@pytest.fixture(scope="module", params=realpods.EXAMPLE_TABLE, ids=lambda e: e.folder)
def deployed(
    request: pytest.FixtureRequest,
    real_node: RealNodeSession,
    operator_release: realpods.OperatorRelease,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployed]:
    """The example applied into its own namespace and Ready; the namespace goes afterwards."""
    example: realpods.Example = request.param
    models = realpods.make_models(example, tmp_path_factory.mktemp(example.folder))
    with realpods.namespace(real_node, example.folder) as namespace:
        uris, secret = realpods.upload_models(real_node, example, models, namespace)
        api = real_node.api_client()
        try:
            core = client.CoreV1Api(api)
            core.create_namespaced_secret(namespace, secret)
            client.CustomObjectsApi(api).create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, realpods.pointed_at_store(example.isvc, uris)
            )
            try:
                isvc = wait_isvc(
                    api, namespace, example.name, is_ready, "Ready", realpods.ISVC_READY_TIMEOUT
                )
            except TimeoutError as exc:
                selector = f"serving.kubeserve.io/inferenceservice={example.name}"
                pods = realpods.pod_report(core, namespace, selector)
                operator = realpods.pod_report(
                    core, operator_release.namespace, operator_release.selector, lines=200
                )
                raise AssertionError(f"{exc}\n{pods}\noperator:\n{operator}") from exc
            services = {}
            for component in example.components:
                name = component.service.format(rev=realpods.revision_of(isvc, component.variant))
                service = core.read_namespaced_service(name, namespace)
                services[component.variant] = str(service.spec.cluster_ip)
                base = f"http://{service.spec.cluster_ip}:{realpods.HTTP_PORT}"
                start = time.monotonic()
                try:
                    realpods.eventually(functools.partial(realpods.serving, base), SERVICE_TIMEOUT)
                except realpods.NotYet as exc:
                    selector = f"serving.kubeserve.io/inferenceservice={example.name}"
                    pods = realpods.pod_report(core, namespace, selector)
                    raise AssertionError(f"{name} never answered: {exc}\n{pods}") from exc
                waited = time.monotonic() - start
                print(f"{namespace}/{name}: Ready -> its Service answers in {waited:.1f}s")
        finally:
            api.close()
        yield Deployed(example, namespace, isvc, services)


def test_the_chart_runs_the_operator_in_a_pod(
    real_node: RealNodeSession, operator_release: realpods.OperatorRelease
) -> None:
    """The operator pod runs the local image under the chart's ServiceAccount and leads."""
    api = real_node.api_client()
    try:
        core = client.CoreV1Api(api)
        (pod,) = realpods.ready_pods(core, operator_release.namespace, operator_release.selector)
        (container,) = pod.spec.containers
        assert container.image == operator_release.image
        assert container.image_pull_policy == "Never"
        assert pod.spec.service_account_name == operator_release.release
        assert pod.spec.node_name == real_node.node.name
        leases = client.CoordinationV1Api(api)

        def holder() -> str:
            lease = leases.read_namespaced_lease(
                operator_release.release, operator_release.namespace
            )
            if not lease.spec.holder_identity:
                raise realpods.NotYet(lease.spec)
            return str(lease.spec.holder_identity)

        assert realpods.eventually(holder, 120).startswith(pod.metadata.name)
    finally:
        api.close()


def test_example_serves_through_its_services(deployed: Deployed) -> None:
    """Every component answers V1, V2 REST and V2 gRPC right through its ClusterIP Service."""
    for component in deployed.example.components:
        base = deployed.http(component.variant)
        if component.v1_instances is not None:
            realpods.v1_predict(base, deployed.example.name, component)
        realpods.v2_infer(base, deployed.example.name, component)
        target = f"{deployed.services[component.variant]}:{realpods.GRPC_PORT}"
        realpods.grpc_infer(target, deployed.example.name, component)


def test_example_serves_through_the_gateway(real_node: RealNodeSession, deployed: Deployed) -> None:
    """The Gateway routes by status.url's host; a variant's header match reaches that variant."""
    if real_node.gateway is None:
        pytest.skip("no Gateway on the real node: Traefik is not built (kubeserve cluster build)")
    gateway = real_node.gateway.url
    host = urlsplit(deployed.isvc["status"]["url"]).hostname
    assert host
    name = deployed.example.name
    versions = {
        c.variant: realpods.v2_infer(deployed.http(c.variant), name, c)["model_version"]
        for c in deployed.example.components
    }
    main, *variants = deployed.example.components

    def once_routed(call: Callable[[], T]) -> T:
        """Return ``call()`` once the Gateway answers it right.

        Traefik loads the route first (404 until then) and each backend Service's
        endpoints on their own later syncs ("no available server" until then); a first
        answer from one backend says nothing of the others, so every call waits.
        """

        def attempt() -> T:
            try:
                return call()
            except AssertionError as exc:
                raise realpods.NotYet(str(exc)) from exc

        return realpods.eventually(attempt, ROUTE_TIMEOUT)

    answer = once_routed(lambda: realpods.v2_infer(gateway, name, main, {"Host": host}))
    assert answer["model_version"] in versions.values()
    if main.v1_instances is not None:
        once_routed(lambda: realpods.v1_predict(gateway, name, main, {"Host": host}))
    for variant in variants:
        match = {"Host": host, **deployed.example.match_headers(variant.variant)}
        picked = once_routed(functools.partial(realpods.v2_infer, gateway, name, variant, match))
        assert picked["model_version"] == versions[variant.variant]
    unknown = httpx.post(
        f"{gateway}/v2/models/{name}/infer", headers={"Host": f"other.{host}"}, json={}, timeout=30
    )
    assert unknown.status_code == 404
