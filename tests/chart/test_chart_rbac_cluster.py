"""The operator runs with exactly the chart's RBAC, cluster-wide and per watched namespace.

helm renders the chart in one mode per test; its ServiceAccount and RBAC objects (and
nothing else) are applied to the real API server, and the operator runs as the chart's
pod would (rendered command and args, rendered ConfigMap as environment) with a token of
that ServiceAccount as its only credential. It must hold its Lease and reconcile an
InferenceService to Ready without a single 403, and the API server must refuse the same
identity what the mode does not grant (SubjectAccessReview).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from kubeserve.chart import helm
from kubeserve.controller import watching
from kubeserve.devcluster import session
from kubeserve_runtime.contract import GROUP, PLURAL, VERSION

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


@pytest.fixture
def watched(api_client: client.ApiClient, namespace: str) -> Iterator[str]:
    """A second namespace, where the InferenceService lives (the operator's is `namespace`)."""
    name = session.create_namespace(api_client, f"{namespace[:50]}-models")
    try:
        yield name
    finally:
        session.delete_namespace(api_client, name)


def kubectl(kubectl_binary: Path, kubeconfig: Path, args: list[str], manifest: str) -> None:
    result = subprocess.run(
        [str(kubectl_binary), "--kubeconfig", str(kubeconfig), *args, "-f", "-"],
        input=manifest,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def allowed(
    api_client: client.ApiClient,
    user: str,
    verb: str,
    resource: str,
    namespace: str = "",
    group: str = "",
    name: str = "",
) -> bool:
    """Ask the API server whether `user` may do `verb` on `resource`."""
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            groups=["system:serviceaccounts", "system:authenticated"],
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, resource=resource, namespace=namespace, group=group, name=name
            ),
        )
    )
    answer = client.AuthorizationV1Api(api_client).create_subject_access_review(review)
    return bool(answer.status.allowed)


def isvc(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": namespace},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://models/iris/v1"}
            }
        },
    }


@pytest.mark.parametrize("mode", ["cluster-wide", "watch-namespaces"])
def test_operator_works_with_exactly_the_charts_rbac(
    mode: str,
    kubeconfig: Path,
    api_client: client.ApiClient,
    namespace: str,
    watched: str,
    helm_binary: Path,
    chart: Path,
    kubectl_binary: Path,
    pod_operator: Any,
) -> None:
    release = f"ks-{namespace[-6:]}"
    values = {} if mode == "cluster-wide" else {"operator.watchNamespaces": f"{{{watched}}}"}
    rendered = [
        obj
        for obj in yaml.safe_load_all(
            helm.template(helm_binary, chart, release=release, namespace=namespace, values=values)
        )
        if obj
    ]
    rbac = yaml.safe_dump_all([obj for obj in rendered if obj["kind"] in RBAC_KINDS])
    kinds = sorted(obj["kind"] for obj in rendered if obj["kind"] in RBAC_KINDS)
    if mode == "cluster-wide":
        assert kinds == [
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ServiceAccount",
        ]
    else:
        assert kinds == ["Role", "Role", "RoleBinding", "RoleBinding", "ServiceAccount"]
    (deployment,) = [obj for obj in rendered if obj["kind"] == "Deployment"]
    (config,) = [obj for obj in rendered if obj["kind"] == "ConfigMap"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    account = pod["serviceAccountName"]
    user = f"system:serviceaccount:{namespace}:{account}"
    fullname = deployment["metadata"]["name"]  # also the Lease's name

    kubectl(kubectl_binary, kubeconfig, ["apply", "--server-side"], rbac)
    try:
        # What the mode grants, and what it must not.
        assert allowed(api_client, user, "create", "deployments", watched, "apps")
        lease = ("leases", namespace, "coordination.k8s.io")
        assert allowed(api_client, user, "update", *lease, fullname)
        assert not allowed(api_client, user, "update", *lease, "other")
        assert not allowed(api_client, user, "get", "secrets", watched)
        assert not allowed(api_client, user, "update", "inferenceservices", watched, GROUP)
        cluster_wide = mode == "cluster-wide"
        assert allowed(api_client, user, "list", "inferenceservices", "", GROUP) is cluster_wide
        assert allowed(api_client, user, "create", "deployments", namespace, "apps") is cluster_wide

        operator = pod_operator(
            namespace,
            account,
            [*container["command"], *container.get("args", [])],
            {**config["data"], "POD_NAME": f"{release}-pod", "POD_NAMESPACE": namespace},
        )
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            GROUP, VERSION, watched, PLURAL, isvc(watched)
        )
        watching.wait_isvc(api_client, watched, "iris", watching.is_ready, "Ready", timeout=120)
        held = client.CoordinationV1Api(api_client).read_namespaced_lease(fullname, namespace)
        assert held.spec.holder_identity.startswith(f"{release}-pod_")
        assert operator.get("/healthz").json()["leader"] is True
        operator.stop()
        operator.assert_never_forbidden()
    finally:
        kubectl(kubectl_binary, kubeconfig, ["delete", "--ignore-not-found", "--wait=false"], rbac)
