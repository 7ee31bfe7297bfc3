"""The chart and manifests/ against the real API server of the local control plane.

Every rendered object passes a server-side dry-run apply (schema, defaulting and
admission of the real kube-apiserver), and the README's kustomize install rolls out
(KWOK plays the kubelet, so the operator pod becomes ready without an image).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from kubeserve.chart import helm

pytestmark = pytest.mark.cluster

CUSTOM_VALUES: dict[str, Any] = {
    "config": {
        "ingressMode": "nginx",
        "ingressClassName": "nginx",
        "prometheusUrl": "http://prom:9090",
    },
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
        "grafanaDashboard": {"enabled": True},
    },
    "operator": {
        "watchNamespaces": ["ml"],
        "verbose": True,
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
    },
}


def kubectl_apply_dry_run(kubectl: Path, kubeconfig: Path, manifest: str) -> list[str]:
    """Server-side dry-run apply `manifest`; return kubectl's per-object lines."""
    result = subprocess.run(
        [
            str(kubectl),
            "--kubeconfig",
            str(kubeconfig),
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=kubeserve-chart-test",
            "--dry-run=server",
            "-f",
            "-",
        ],
        input=manifest,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"the API server refused the chart:\n{result.stderr}"
    return result.stdout.splitlines()


@pytest.mark.parametrize("custom", [False, True], ids=["defaults", "nginx-servicemonitor"])
def test_every_rendered_object_passes_server_side_dry_run(
    custom: bool,
    kubeconfig: Path,
    namespace: str,
    helm_binary: Path,
    chart: Path,
    kubectl_binary: Path,
    tmp_path: Path,
) -> None:
    """The real API server accepts every object helm renders (CRD, ServiceMonitor,
    PrometheusRule and the dashboard ConfigMap included)."""
    files: tuple[Path, ...] = ()
    if custom:
        # Roles go into the watched namespaces, which must exist: watch the test's own.
        values = {**CUSTOM_VALUES, "operator": {**CUSTOM_VALUES["operator"]}}
        values["operator"]["watchNamespaces"] = [namespace]
        path = tmp_path / "custom.yaml"
        path.write_text(yaml.safe_dump(values))
        files = (path,)
    rendered = helm.template(
        helm_binary,
        chart,
        release=f"kubeserve-{namespace[-6:]}",
        namespace=namespace,
        values_files=files,
        include_crds=True,
    )
    count = sum(1 for obj in yaml.safe_load_all(rendered) if obj)
    lines = kubectl_apply_dry_run(kubectl_binary, kubeconfig, rendered)
    accepted = [line for line in lines if line.endswith("(server dry run)")]
    assert len(accepted) == count, lines
    for kind in ("servicemonitor", "prometheusrule"):
        prefix = f"{kind}.monitoring.coreos.com/"
        assert any(line.startswith(prefix) for line in accepted) is custom
    dashboard = f"configmap/kubeserve-{namespace[-6:]}-dashboard "
    assert any(line.startswith(dashboard) for line in accepted) is custom


def test_kustomize_install_applies_and_rolls_out(
    kubeconfig: Path, kubectl_binary: Path, chart: Path, api_client: client.ApiClient
) -> None:
    """The README's `kubectl apply --server-side -k manifests/` installs a running operator."""

    def kubectl(*args: str) -> str:
        result = subprocess.run(
            [str(kubectl_binary), "--kubeconfig", str(kubeconfig), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    try:
        kubectl("apply", "--server-side", "-k", str(chart / "manifests"))
        kubectl("-n", helm.NAMESPACE, "rollout", "status", "deployment/kubeserve", "--timeout=90s")
        labels = client.CoreV1Api(api_client).read_namespace(helm.NAMESPACE).metadata.labels
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    finally:
        # Everything but the CRD, which the session's other tests still use.
        kubectl(
            "delete",
            "--ignore-not-found",
            "--wait=false",
            "clusterrolebinding/kubeserve",
            "clusterrole/kubeserve",
            f"namespace/{helm.NAMESPACE}",
        )
