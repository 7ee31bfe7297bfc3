"""The chart lints, renders with default and non-default values, and its objects are right.

Everything here runs the real helm binary; no cluster is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.chart import helm

Objects = list[dict[str, Any]]

CUSTOM_VALUES: dict[str, Any] = {
    "fullnameOverride": "serving-operator",
    "commonLabels": {"team": "ml-platform"},
    "operator": {
        "image": {
            "repository": "registry.example/kubeserve-operator",
            "digest": "sha256:" + "a" * 64,
        },
        "imagePullSecrets": [{"name": "regcred"}],
        "watchNamespaces": ["ml", "ml-staging"],
        "verbose": True,
        "metricsPort": 9090,
        "healthPort": 9091,
        "podAnnotations": {"example.com/owner": "ml"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
        ],
        "priorityClassName": "system-cluster-critical",
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
    },
    "serviceAccount": {"annotations": {"example.com/role": "operator"}},
    "config": {
        "runtimeImage": {"repository": "registry.example/kubeserve-runtime", "tag": "9.9.9"},
        "storageInitializerImage": "registry.example/kubeserve-initializer:1",
        "ingressMode": "nginx",
        "ingressClassName": "nginx-internal",
        "gateway": {
            "name": "public",
            "namespace": "gateways",
            "sectionName": "https",
            "mirrorMode": "fraction",
        },
        "domainTemplate": "{name}-{namespace}.models.example.com",
        "urlScheme": "https",
        "prometheusUrl": "http://prometheus.monitoring:9090",
        "reconcileIntervalSeconds": 30,
        "historyLimit": 5,
    },
    "metrics": {
        "service": {"port": 9090, "annotations": {"example.com/scrape": "true"}},
        "serviceMonitor": {
            "enabled": True,
            "interval": "15s",
            "scrapeTimeout": "10s",
            "labels": {"release": "prom"},
        },
        "prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
        "grafanaDashboard": {"enabled": True},
    },
}


def one(items: Objects, kind: str) -> dict[str, Any]:
    """Return the single rendered object of one kind."""
    found = [obj for obj in items if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def custom_values(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the non-default values file."""
    path = tmp_path_factory.mktemp("values") / "custom.yaml"
    path.write_text(yaml.safe_dump(CUSTOM_VALUES))
    return path


@pytest.fixture(scope="module")
def defaults(render: Any) -> Objects:
    """The chart rendered with default values."""
    result: Objects = render()
    return result


@pytest.fixture(scope="module")
def custom(render: Any, custom_values: Path) -> Objects:
    """The chart rendered with the non-default values."""
    result: Objects = render(values_files=(custom_values,))
    return result


def test_lint_default_and_custom_values(
    helm_binary: Path, chart: Path, custom_values: Path
) -> None:
    """helm lint --strict passes with default and with non-default values."""
    for extra in ([], ["--values", str(custom_values)]):
        output = helm.run_helm(helm_binary, ["lint", str(chart), "--strict", *extra])
        assert "0 chart(s) failed" in output


def test_default_render_has_the_operator_objects(defaults: Objects) -> None:
    """Default values render the operator install and no ServiceMonitor."""
    kinds = sorted(obj["kind"] for obj in defaults)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    for obj in defaults:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "kubeserve"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == helm.NAMESPACE


def test_crds_come_from_the_crds_folder(render: Any, chart: Path) -> None:
    """--include-crds adds exactly the generated CRD of crds/."""
    crds = [obj for obj in render(include_crds=True) if obj["kind"] == "CustomResourceDefinition"]
    committed = yaml.safe_load(
        (chart / "crds" / "serving.kubeserve.io_inferenceservices.yaml").read_text()
    )
    assert crds == [committed]


LEADER_ARGS = [
    "--leader-elect",
    f"--leader-election-namespace={helm.NAMESPACE}",
    f"--leader-election-id={helm.RELEASE}",
    "--lease-duration=15",
    "--renew-deadline=10",
    "--retry-period=2",
]
POD_NAME_ENV = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}


def test_deployment_is_an_elected_restricted_operator(defaults: Objects) -> None:
    """One replica holding a Lease, rolling updates, `kubeserve run`, /healthz probes,
    metrics port, restricted pod."""
    deployment = one(defaults, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == one(defaults, "ServiceAccount")["metadata"]["name"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/kubeserve/operator:0.1.0"
    assert container["command"] == ["kubeserve", "run"]
    assert container["args"] == LEADER_ARGS
    assert container["env"] == [POD_NAME_ENV]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert container["resources"]["limits"] == {"memory": "512Mi"}
    assert container["envFrom"] == [
        {"configMapRef": {"name": one(defaults, "ConfigMap")["metadata"]["name"]}}
    ]
    # Pod Security "restricted"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_metrics_service_targets_the_operator_pod(defaults: Objects) -> None:
    """The metrics Service selects the operator pod and targets its metrics port."""
    service = one(defaults, "Service")
    pod_labels = one(defaults, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_config_change_restarts_the_operator(render: Any) -> None:
    """The pod template carries a checksum of the config, so `helm upgrade` rolls the pod."""

    def checksum(values: dict[str, str]) -> str:
        deployment = one(render(values), "Deployment")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"config.ingressMode": "none"})


def test_custom_values_render_nginx_mode_and_servicemonitor(custom: Objects) -> None:
    """Non-default values reach the Deployment, the config, the Service and the ServiceMonitor."""
    deployment = one(custom, "Deployment")
    assert deployment["metadata"]["name"] == "serving-operator"
    assert deployment["metadata"]["labels"]["team"] == "ml-platform"
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/kubeserve-operator@sha256:" + "a" * 64
    assert container["args"] == [
        "--namespace=ml",
        "--namespace=ml-staging",
        "--verbose",
        "--leader-elect",
        f"--leader-election-namespace={helm.NAMESPACE}",
        "--leader-election-id=serving-operator",
        "--lease-duration=15",
        "--renew-deadline=10",
        "--retry-period=2",
    ]
    assert {port["name"]: port["containerPort"] for port in container["ports"]} == {
        "metrics": 9090,
        "health": 9091,
    }
    assert container["env"] == [POD_NAME_ENV, {"name": "TZ", "value": "UTC"}]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert deployment["spec"]["template"]["metadata"]["annotations"]["example.com/owner"] == "ml"

    (config,) = [
        obj
        for obj in custom
        if obj["kind"] == "ConfigMap" and "grafana_dashboard" not in obj["metadata"]["labels"]
    ]
    data = config["data"]
    assert data["KUBESERVE_OPERATOR_INGRESS_MODE"] == "nginx"
    assert data["KUBESERVE_OPERATOR_INGRESS_CLASS"] == "nginx-internal"
    assert data["KUBESERVE_OPERATOR_RUNTIME_IMAGE"] == "registry.example/kubeserve-runtime:9.9.9"

    service = one(custom, "Service")
    assert service["spec"]["ports"][0]["port"] == 9090
    monitor = one(custom, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"] == [
        {
            "port": "metrics",
            "path": "/metrics",
            "honorLabels": True,
            "interval": "15s",
            "scrapeTimeout": "10s",
        }
    ]
    bindings = [obj for obj in custom if obj["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == [
        "kubeserve-system",
        "ml",
        "ml-staging",
    ]
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "serving-operator", "namespace": helm.NAMESPACE}
        ]
    assert one(custom, "ServiceAccount")["metadata"]["annotations"] == {
        "example.com/role": "operator"
    }


def test_existing_service_account_without_rbac(render: Any) -> None:
    """serviceAccount.create=false uses a named account; rbac.create=false renders no RBAC."""
    items = render(
        {
            "serviceAccount.create": "false",
            "serviceAccount.name": "preexisting",
            "rbac.create": "false",
        }
    )
    kinds = {obj["kind"] for obj in items}
    assert kinds.isdisjoint(
        {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    )
    assert (
        one(items, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "preexisting"
    )


def test_missing_service_account_name_is_refused(render: Any) -> None:
    """serviceAccount.create=false without a name fails with a message naming the value."""
    with pytest.raises(helm.HelmError, match=r"serviceAccount.name is required"):
        render({"serviceAccount.create": "false"})


def test_two_replicas_stand_by_for_each_other(render: Any) -> None:
    """replicas 2 with the Lease: both pods run the elector; the strategy can be set."""
    items = render({"operator.replicas": "2", "operator.strategy.type": "Recreate"})
    spec = one(items, "Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "Recreate"}
    assert "--leader-elect" in spec["template"]["spec"]["containers"][0]["args"]


def test_without_leader_election_one_recreated_replica(render: Any) -> None:
    """Without the Lease two operators must never overlap: one replica, Recreate, and the
    values that would break that are refused with a message naming them."""
    off = {"operator.leaderElection.enabled": "false"}
    spec = one(render(off), "Deployment")["spec"]
    assert (spec["replicas"], spec["strategy"]) == (1, {"type": "Recreate"})
    assert "args" not in spec["template"]["spec"]["containers"][0]
    with pytest.raises(
        helm.HelmError, match=r"operator.replicas > 1 needs operator.leaderElection"
    ):
        render({**off, "operator.replicas": "2"})
    with pytest.raises(helm.HelmError, match=r"RollingUpdate needs operator.leaderElection"):
        render({**off, "operator.strategy.type": "RollingUpdate"})


def test_lease_timings_must_be_ordered(render: Any) -> None:
    with pytest.raises(helm.HelmError, match="retryPeriodSeconds < renewDeadlineSeconds"):
        render({"operator.leaderElection.renewDeadlineSeconds": "20"})
