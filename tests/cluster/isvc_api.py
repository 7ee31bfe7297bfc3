"""InferenceService helpers shared by the cluster tests: build, create, patch, read, wait."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from kubeserve_runtime.contract import API_VERSION, GROUP, KIND, PLURAL, VERSION
from kubeserve_runtime.testing import wait_until


def predictor(uri: str, *, min_replicas: int = 1, max_replicas: int = 1) -> dict[str, Any]:
    """A sklearn predictor spec."""
    return {
        "model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri},
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
    }


def isvc(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """An InferenceService with `spec`."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    """The custom objects API."""
    return client.CustomObjectsApi(api)


def create(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create an InferenceService; return it as stored."""
    obj: dict[str, Any] = custom(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    return obj


def patch(api: client.ApiClient, namespace: str, name: str, body: dict[str, Any]) -> None:
    """Merge-patch an InferenceService (null removes a field)."""
    custom(api).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body)


def set_storage_uri(api: client.ApiClient, namespace: str, name: str, uri: str) -> None:
    """Point the main predictor at another model: a new revision, as a user makes one."""
    patch(api, namespace, name, {"spec": {"predictor": {"model": {"storageUri": uri}}}})


def get(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """The InferenceService as stored."""
    obj: dict[str, Any] = custom(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return obj


def until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `check` until true; raise TimeoutError naming `what`."""
    wait_until(check, what, timeout, every=0.2)


CAPTURE_ENV = "KUBESERVE_CAPTURE_STATUSES"
"""A folder: when set, :func:`capture` writes the statuses the tests saw there (the source
of tests/unit/statuses/, the Argo CD health check's fixtures)."""


def capture(obj: dict[str, Any], name: str) -> None:
    """Check the kstatus rules on `obj` (every condition and the status carry the
    generation the operator read; Reconciling and Stalled are never both present and
    never False), then save it as `name`.json when CAPTURE_ENV names a folder."""
    status = obj.get("status") or {}
    generation = status.get("observedGeneration")
    assert generation is not None
    conditions = status.get("conditions") or []
    assert all(c.get("observedGeneration") == generation for c in conditions), conditions
    abnormal = [c for c in conditions if c["type"] in ("Reconciling", "Stalled")]
    assert len(abnormal) <= 1, abnormal
    assert all(c["status"] == "True" for c in abnormal), abnormal
    folder = os.environ.get(CAPTURE_ENV)
    if not folder:
        return
    meta = obj["metadata"]
    kept = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": meta["name"], "generation": meta["generation"]},
        "spec": obj["spec"],
        "status": status,
    }
    Path(folder, f"{name}.json").write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n")
