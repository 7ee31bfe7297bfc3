"""Every example in examples/ served by real pods, reconciled by the operator that
``helm install`` of the repository's chart runs in a pod.

Per example: its own make_model.py trains the model(s), they go to the node's S3 store,
and its isvc.yaml is applied with only the storageUri(s) and the store's Secret changed.
Once Ready, each component answers through its ClusterIP Service from the host: V1
``:predict``, V2 REST infer and V2 gRPC ModelInfer (tritonclient), and the answers are
checked (the class of known flowers, the output shapes), not only the status.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import realpods
from kubernetes import client

from kubeserve.controller.kube import GROUP, PLURAL, VERSION
from kubeserve.controller.watching import is_ready, wait_isvc
from kubeserve.devcluster.session import RealNodeSession


@pytest.fixture(scope="module")
def operator_release(real_node: RealNodeSession) -> Iterator[realpods.OperatorRelease]:
    """The chart installed with helm, its operator pod Ready; uninstalled afterwards."""
    release = realpods.install_operator(real_node)
    yield release
    realpods.uninstall_operator(real_node, release)


@pytest.fixture
def example_namespace(real_node: RealNodeSession, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test."""
    with realpods.namespace(real_node, request.node.name) as name:
        yield name


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
        lease = client.CoordinationV1Api(api)

        def holder() -> str:
            spec = lease.read_namespaced_lease(operator_release.release, operator_release.namespace)
            if not spec.spec.holder_identity:
                raise realpods.NotYet(spec.spec)
            return str(spec.spec.holder_identity)

        assert realpods.eventually(holder, 120).startswith(pod.metadata.name)
    finally:
        api.close()


@pytest.mark.parametrize("example", realpods.EXAMPLE_TABLE, ids=lambda e: e.folder)
def test_example_serves_from_pods(
    example: realpods.Example,
    real_node: RealNodeSession,
    operator_release: realpods.OperatorRelease,
    example_namespace: str,
    tmp_path: Path,
) -> None:
    """The example becomes Ready and every component answers V1, V2 REST and gRPC right."""
    models = realpods.make_models(example, tmp_path / "model")
    uris, secret = realpods.upload_models(real_node, example, models, example_namespace)
    api = real_node.api_client()
    try:
        core = client.CoreV1Api(api)
        core.create_namespaced_secret(example_namespace, secret)
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, example_namespace, PLURAL, realpods.pointed_at_store(example.isvc, uris)
        )
        try:
            isvc = wait_isvc(
                api, example_namespace, example.name, is_ready, "Ready", realpods.ISVC_READY_TIMEOUT
            )
        except TimeoutError as exc:
            selector = f"serving.kubeserve.io/inferenceservice={example.name}"
            pods = realpods.pod_report(core, example_namespace, selector)
            operator = realpods.pod_report(
                core, operator_release.namespace, operator_release.selector, lines=200
            )
            raise AssertionError(f"{exc}\n{pods}\noperator:\n{operator}") from exc
        for component in example.components:
            name = component.service.format(rev=realpods.revision_of(isvc, component.variant))
            ip = core.read_namespaced_service(name, example_namespace).spec.cluster_ip
            base = f"http://{ip}:{realpods.HTTP_PORT}"
            if component.v1_instances is not None:
                realpods.v1_predict(base, example.name, component)
            realpods.v2_infer(base, example.name, component)
            realpods.grpc_infer(f"{ip}:{realpods.GRPC_PORT}", example.name, component)
    finally:
        api.close()
