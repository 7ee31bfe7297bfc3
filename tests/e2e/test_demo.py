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
