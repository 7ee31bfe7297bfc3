"""A real kubelet node: pods run, the host is restored, a model is served from S3 in a pod.

The node comes from the ``real_node`` fixture (tests/e2e/conftest.py), except in the
first test, which drives ``kubeserve cluster up --real-node`` / ``status`` / ``down``
itself and compares host snapshots.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from kubeserve.devcluster import hostnet, hoststate, node
from kubeserve.devcluster.containerd import PAUSE_IMAGE
from kubeserve.devcluster.session import RealNodeSession

REPO = Path(__file__).resolve().parents[2]
IRIS = REPO / "examples" / "01-sklearn-iris"
IRIS_INPUT = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [6.7, 3.0, 5.2, 2.3]}
    ]
}


class _NotYet(Exception):
    """Raised while a condition does not hold yet."""


def _eventually(check: Any, timeout: float) -> Any:
    """Return ``check()`` once it stops raising _NotYet; fail after ``timeout`` seconds."""
    return Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(0.5),
        retry=retry_if_exception_type(_NotYet),
        reraise=True,
    )(check)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``kubeserve cluster ARGS`` as a user would."""
    argv = [sys.executable, "-m", "kubeserve.cli", "cluster", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=400)


@pytest.mark.realnode
def test_cluster_up_status_down_restores_the_host(short_dir: Path) -> None:
    reasons = node.host_reasons()
    if reasons:
        pytest.skip("no real node on this host: " + "; ".join(reasons))
    env = {**os.environ, "KUBESERVE_CLUSTER_DIR": str(short_dir / "cluster")}
    before = hoststate.take([])
    up = _cli(env, "up", "--real-node")
    try:
        assert up.returncode == 0, up.stderr
        status = _cli(env, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        lines = status.stdout.splitlines()
        for part in ("network", "containerd", "kubelet", "kube-proxy", "kube-apiserver"):
            assert any(line.split()[0] == part and "ok" in line.split() for line in lines), part
        assert any("Ready" in line and line.split()[-1] == "ok" for line in lines)
        assert hoststate.differences(before, hoststate.take([])) != []
    finally:
        down = _cli(env, "down")
    assert down.returncode == 0, down.stderr
    assert hoststate.differences(before, hoststate.take([])) == []
    assert not (short_dir / "cluster").exists()


def _pod_running(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod:
    """Return the pod once it is Running and Ready."""
    pod = core.read_namespaced_pod(name, namespace)
    ready = [c for c in pod.status.conditions or [] if c.type == "Ready" and c.status == "True"]
    if pod.status.phase != "Running" or not ready:
        raise _NotYet(f"{pod.status.phase}: {pod.status.conditions}")
    return pod


def test_a_pod_runs_on_the_real_node(real_node: RealNodeSession, node_namespace: str) -> None:
    api = real_node.api_client()
    core = client.CoreV1Api(api)
    try:
        nodes = [item.metadata.name for item in core.list_node().items]
        assert nodes == [real_node.node.name]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pause"},
            "spec": {
                "containers": [{"name": "pause", "image": PAUSE_IMAGE, "imagePullPolicy": "Never"}],
                "terminationGracePeriodSeconds": 1,
            },
        }
        core.create_namespaced_pod(node_namespace, pod)
        running = _eventually(lambda: _pod_running(core, node_namespace, "pause"), 90)
        assert running.spec.node_name == real_node.node.name
        address = ipaddress.ip_address(running.status.pod_ip)
        assert address in ipaddress.ip_network(hostnet.POD_SUBNET)
    finally:
        api.close()


def _runtime_archive() -> Path | None:
    """Return the runtime image archive when ``kubeserve image build runtime`` made it."""
    from kubeserve.images import catalog

    try:
        path = catalog.archive_of("runtime")
    except KeyError:
        return None
    return path if path.exists() else None


def _isvc_ready(real_node: RealNodeSession, namespace: str) -> None:
    """Raise _NotYet until the iris InferenceService reports Ready=True."""
    api = real_node.api_client()
    try:
        obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "serving.kubeserve.io", "v1alpha1", namespace, "inferenceservices", "iris"
        )
    finally:
        api.close()
    conditions = obj.get("status", {}).get("conditions", [])
    if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
        raise _NotYet(conditions)


def test_iris_from_s3_serves_through_its_cluster_ip(
    real_node: RealNodeSession, node_namespace: str, tmp_path: Path
) -> None:
    if _runtime_archive() is None:
        pytest.skip("no runtime image archive: run `kubeserve image build runtime` first")
    from kubeserve.controller.process import OperatorProcess

    subprocess.run(
        [sys.executable, str(IRIS / "make_model.py"), "--out", str(tmp_path / "model")], check=True
    )
    stored = real_node.store.upload(tmp_path / "model", f"{node_namespace}/iris")
    isvc = stored.apply_to(yaml.safe_load((IRIS / "isvc.yaml").read_text()), "iris-storage")
    api = real_node.api_client()
    core = client.CoreV1Api(api)
    try:
        core.create_namespaced_secret(node_namespace, stored.secret("iris-storage", node_namespace))
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "serving.kubeserve.io", "v1alpha1", node_namespace, "inferenceservices", isvc
        )
        with OperatorProcess(
            real_node.kubeconfig, tmp_path / "operator.log", namespaces=[node_namespace]
        ) as operator:
            try:
                _eventually(lambda: _isvc_ready(real_node, node_namespace), 240)
            finally:
                print(operator.log()[-4000:])
        ip = core.read_namespaced_service("iris", node_namespace).spec.cluster_ip

        def served() -> httpx.Response:
            # kube-proxy writes the new Service's rules shortly after the pod is Ready;
            # until then the ClusterIP refuses connections
            try:
                url = f"http://{ip}:8080/v2/models/iris/infer"
                return httpx.post(url, json=IRIS_INPUT, timeout=10)
            except httpx.ConnectError as exc:
                raise _NotYet(str(exc)) from exc

        answer = _eventually(served, 120)
    finally:
        api.close()
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [2]
