"""Drift detection: what the API server adds never causes a write, what users change does."""

from __future__ import annotations

from typing import Any

from kubeserve.controller.drift import contains, needs_apply

DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "iris", "namespace": "ml", "labels": {"a": "b"}},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [{"name": "c", "image": "img", "ports": [{"containerPort": 8080}]}]
            }
        },
    },
}


def live_copy() -> dict[str, Any]:
    """DESIRED as the API server returns it: defaulted fields and server metadata added."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "iris",
            "namespace": "ml",
            "labels": {"a": "b", "other-tool": "x"},
            "resourceVersion": "42",
            "uid": "u",
            "generation": 3,
        },
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 10,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "img",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "terminationMessagePath": "/dev/termination-log",
                        }
                    ]
                }
            },
        },
        "status": {"readyReplicas": 2},
    }


def test_server_defaults_are_not_drift() -> None:
    """Fields the server added or other managers own do not trigger an apply."""
    assert not needs_apply(DESIRED, live_copy())


def test_missing_object_needs_apply() -> None:
    """A child that does not exist is created."""
    assert needs_apply(DESIRED, None)


def test_hand_edit_is_drift() -> None:
    """A changed value, a removed label or a changed list length is repaired."""
    edited = live_copy()
    edited["spec"]["replicas"] = 5
    assert needs_apply(DESIRED, edited)
    unlabelled = live_copy()
    del unlabelled["metadata"]["labels"]["a"]
    assert needs_apply(DESIRED, unlabelled)
    more = live_copy()
    more["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    assert needs_apply(DESIRED, more)


def test_numbers_and_booleans() -> None:
    """1 and 1.0 are equal; True is not 1."""
    assert contains({"x": 1.0}, {"x": 1})
    assert not contains({"x": 1}, {"x": True})
    assert contains({"x": True}, {"x": True})
