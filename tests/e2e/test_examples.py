"""Every example's isvc.yaml, applied to the real control plane, becomes Ready.

The files are applied as committed (``kubectl apply`` semantics through the API: the
API server validates them against the CRD's schema and CEL rules) into the test's
namespace, with the operator watching it. Models are not fetched in the cluster (KWOK
simulates the node), so Ready here means: valid, reconciled into children, and the
predictor Deployments report ready replicas; the runtime side of each example is
covered by ``kubeserve local`` tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from kubeserve.controller.process import OperatorProcess
from kubeserve.controller.watching import is_ready, wait_isvc

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FOLDERS = sorted(p.name for p in EXAMPLES.iterdir() if (p / "isvc.yaml").is_file())


def test_every_example_folder_is_complete() -> None:
    """Each numbered example has its README, InferenceService and model maker."""
    assert len(FOLDERS) >= 6
    for name in FOLDERS:
        for part in ("README.md", "isvc.yaml", "make_model.py"):
            assert (EXAMPLES / name / part).is_file(), f"{name}/{part}"


@pytest.mark.parametrize("example", FOLDERS)
def test_example_becomes_ready(
    example: str, api_client: client.ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    """Create the example's InferenceService and watch it turn Ready."""
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / example / "isvc.yaml").read_text())
    group, version = body["apiVersion"].split("/")
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        group, version, namespace, "inferenceservices", body
    )
    name = body["metadata"]["name"]
    obj = wait_isvc(api_client, namespace, name, is_ready, "Ready", timeout=60)
    components = 1 + len(body["spec"].get("variants") or [])
    variants = obj["status"].get("variants") or []
    assert len(variants) == components
    assert all(v.get("readyReplicas", 0) >= 1 for v in variants), variants
