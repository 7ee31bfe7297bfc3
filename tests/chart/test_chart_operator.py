"""`helm install` of the chart gives an operator that reconciles, with only its own RBAC.

No image can be built here, so the operator runs as a local process exactly as the
chart's pod would: the installed Deployment's command and args, the installed ConfigMap
as environment, and a token of the chart's ServiceAccount (TokenRequest API) as its only
credential, which proves the ClusterRole sufficient. KWOK makes the predictor pods ready.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client, watch

from kubeserve.chart import helm

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "serving.kubeserve.io", "v1alpha1", "inferenceservices"


def free_port() -> int:
    """Return a TCP port that is free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def token_kubeconfig(admin: Path, token: str, path: Path) -> Path:
    """Write a kubeconfig for the admin's cluster that authenticates with `token` only."""
    config = yaml.safe_load(admin.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])[
        "context"
    ]
    cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "operator",
                        "context": {"cluster": cluster["name"], "user": "operator"},
                    }
                ],
                "current-context": "operator",
            }
        )
    )
    return path


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
    tmp_path: Path,
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
    token = core.create_namespaced_service_account_token(
        pod.service_account_name,
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        ),
    ).status.token
    sa_kubeconfig = token_kubeconfig(kubeconfig, token, tmp_path / "operator.kubeconfig")

    metrics_port, health_port = free_port(), free_port()
    env |= {
        "KUBESERVE_OPERATOR_METRICS_PORT": str(metrics_port),
        "KUBESERVE_OPERATOR_HEALTH_PORT": str(health_port),
        "KUBESERVE_OPERATOR_BIND_ADDRESS": "127.0.0.1",
    }
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBESERVE_OPERATOR_", "KUBECONFIG"))
    }
    executable = Path(sys.executable).with_name(container.command[0])
    argv = [
        str(executable),
        *container.command[1:],
        *(container.args or []),
        "--kubeconfig",
        str(sa_kubeconfig),
    ]
    assert f"--namespace={namespace}" in argv
    log_path = tmp_path / "operator.log"
    with log_path.open("w") as log:
        operator = subprocess.Popen(argv, env=base_env | env, stdout=log, stderr=subprocess.STDOUT)
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

        assert httpx.get(f"http://127.0.0.1:{health_port}/healthz", timeout=5).status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'kubeserve_reconcile_total{result="success"}' in metrics
    finally:
        operator.send_signal(signal.SIGINT)
        try:
            operator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
    log_text = log_path.read_text()
    assert "Forbidden" not in log_text, log_text[-4000:]
    assert " 403" not in log_text, log_text[-4000:]
