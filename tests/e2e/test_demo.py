"""``make demo``'s main program end to end, against the session's control plane.

The ``kubeconfig`` fixture exports KUBECONFIG, so the demo uses that cluster instead of
starting its own; its namespace and work folder come from the test. Everything else is
what a user sees: operator, apply, Ready, ``kubeserve local`` and a real prediction.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_shows_ready_and_a_real_prediction(
    kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    """The demo applies the iris example, sees it Ready and prints a local prediction."""
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KUBESERVE_DEMO_NAMESPACE": namespace,
        "KUBESERVE_DEMO_WORKDIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "kubeserve.demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, f"{out}\n{result.stderr}"
    assert f"using the cluster of KUBECONFIG={kubeconfig}" in out
    assert "inferenceservice.serving.kubeserve.io/iris created" in out
    assert f"http://iris.{namespace}.example.com   True" in out
    assert '{"predictions":[0]}' in out
    assert "prediction: class 0 = setosa" in out
    assert '"model_version":"' in out
    assert "kubeserve local: stopped" in out
    assert f"kubectl delete namespace {namespace}" in out
    assert (tmp_path / "model" / "model.joblib").is_file()
    assert "operator.log" in out


@pytest.mark.slow
@pytest.mark.realnode
def test_demo_on_a_real_node_predicts_from_a_pod_and_splits_a_canary(
    tmp_path: Path, short_dir: Path
) -> None:
    """Without KUBECONFIG, where a real node can run, the demo's answers come from a pod.

    It starts the machine's one real node itself, so it runs before the session's
    ``real_node`` fixture (tests/e2e/conftest.py orders it first) and stops the node with
    ``kubeserve cluster down``, which must restore the host.
    """
    from kubeserve import nodedemo
    from kubeserve.devcluster import node

    reasons = node.host_reasons()
    if reasons:
        pytest.skip("no real node on this host: " + "; ".join(reasons))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KUBECONFIG", nodedemo.REAL_NODE_ENV)
    }
    env["KUBESERVE_CLUSTER_DIR"] = str(short_dir / "cluster")
    env["KUBESERVE_DEMO_WORKDIR"] = str(tmp_path / "work")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "kubeserve.demo"],
            capture_output=True,
            text=True,
            env=env,
            timeout=1200,
            check=False,
        )
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "kubeserve.cli", "cluster", "down"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    out = result.stdout
    assert result.returncode == 0, f"{out}\n{result.stderr}"
    assert "a real kubelet node on this machine" in out
    assert "no real node here" not in out
    assert '{"predictions":[0]}' in out
    assert "prediction: class 0 = setosa" in out
    assert "the same through the Gateway (Host: iris.kubeserve-demo.example.com)" in out
    assert '"data":[0]' in out
    counts = {
        line.split()[0]: int(line.split(":")[1].split()[0])
        for line in out.splitlines()
        if line.strip().startswith(("stable revision", "canary revision"))
    }
    total = nodedemo.CANARY_REQUESTS
    assert set(counts) == {"stable", "canary"}, out
    assert counts["stable"] + counts["canary"] == total
    # Traefik's weighted round robin spaces the canary's turns evenly (one in ten at
    # 90/10), so any 50 sequential requests hold 5 canary answers, give or take the one
    # turn the window can cut at either end.
    assert abs(counts["canary"] - total * nodedemo.CANARY_PERCENT // 100) <= 1, out
    assert down.returncode == 0, down.stdout + down.stderr
