"""`helm install` of the chart gives an operator that reconciles, with only its own RBAC.

No image can be built here, so the operator runs as a local process exactly as the
chart's pod would: the installed Deployment's command and args, the installed ConfigMap
as environment, and a token of the chart's ServiceAccount (TokenRequest API) as its only
credential, which proves the Roles sufficient (watchNamespaces is set, so there are no
cluster-wide ones). KWOK makes the predictor pods ready.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from kubeserve.chart import helm

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "serving.kubeserve.io", "v1alpha1", "inferenceservices"


def wait_until(stream: Iterator[dict[str, Any]], done: Callable[[Any], bool], what: str) -> Any:
    """Consume a watch stream until `done(object)`; fail naming `what` when it ends first."""
    for event in stream:
        if done(event["object"]):
            return event["object"]
    pytest.fail(f"timed out waiting for {what}")


def is_ready(isvc: dict[str, Any]) -> bool:
    """Return whether an InferenceService has condition Ready=True."""
    conditions = isvc.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.fixture
def release(
    kubeconfig: Path, namespace: str, helm_binary: Path, chart: Path
) -> Iterator[tuple[str, str]]:
    """`helm install` the chart into the test namespace (watching only it); yield (name, notes)."""
    name = f"kubeserve-{namespace[-6:]}"
    args = ["--kubeconfig", str(kubeconfig), "--namespace", namespace]
    notes = helm.run_helm(
        helm_binary,
        [
            "install",
            name,
            str(chart),
            *args,
            "--set",
            f"operator.watchNamespaces={{{namespace}}}",
            "--wait",
            "--timeout",
            "120s",
        ],
    )
    try:
        yield name, notes
    finally:
        helm.run_helm(helm_binary, ["uninstall", name, *args, "--wait"])


@pytest.mark.slow
def test_helm_install_runs_an_operator_that_reconciles(
    release: tuple[str, str],
    kubeconfig: Path,
    namespace: str,
    api_client: client.ApiClient,
    pod_operator: Any,
) -> None:
    """The installed chart's identity, config and command reconcile an InferenceService to Ready."""
    name, notes = release
    assert "`helm upgrade` does NOT update CustomResourceDefinitions" in notes
    assert "kubectl apply --server-side --force-conflicts -f crds/" in notes

    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    deployment = apps.read_namespaced_deployment(name, namespace)
    assert deployment.status.ready_replicas == 1  # admitted, scheduled; KWOK reports it ready
    pod = deployment.spec.template.spec
    (container,) = pod.containers
    env = dict(core.read_namespaced_config_map(f"{name}-config", namespace).data)
    argv = [*container.command, *(container.args or [])]
    assert f"--namespace={namespace}" in argv
    operator = pod_operator(
        namespace, pod.service_account_name, argv, env | {"POD_NAME": f"{name}-pod"}
    )
    try:
        isvc = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "InferenceService",
            "metadata": {"name": "iris", "namespace": namespace},
            "spec": {
                "predictor": {
                    "model": {
                        "modelFormat": {"name": "sklearn"},
                        "storageUri": "s3://models/iris/v1",
                    }
                }
            },
        }
        custom = client.CustomObjectsApi(api_client)
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, isvc)
        children = watch.Watch().stream(
            apps.list_namespaced_deployment,
            namespace,
            label_selector="serving.kubeserve.io/inferenceservice=iris",
            timeout_seconds=90,
        )
        wait_until(children, lambda d: d.status is not None, "the predictor Deployment")
        ready = watch.Watch().stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            field_selector="metadata.name=iris",
            timeout_seconds=120,
        )
        wait_until(ready, is_ready, "InferenceService iris to become Ready")

        assert operator.get("/healthz").json()["leader"] is True
        assert 'kubeserve_reconcile_total{result="success"}' in operator.metrics()
    finally:
        operator.stop()
    operator.assert_never_forbidden()
