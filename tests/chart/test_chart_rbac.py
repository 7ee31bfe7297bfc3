"""The ClusterRole grants exactly what the operator uses, and never Secrets."""

from __future__ import annotations

from typing import Any

ALL = {"get", "list", "watch", "create", "update", "patch", "delete"}
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("serving.kubeserve.io", "inferenceservices"): {"get", "list", "watch"},
    ("serving.kubeserve.io", "inferenceservices/status"): {"get", "patch", "update"},
    ("apps", "deployments"): ALL,
    ("", "services"): ALL,
    ("autoscaling", "horizontalpodautoscalers"): ALL,
    ("policy", "poddisruptionbudgets"): ALL,
    ("gateway.networking.k8s.io", "httproutes"): ALL,
    ("networking.k8s.io", "ingresses"): ALL,
    ("", "pods"): {"get", "list", "watch"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
}


def grants(render: Any) -> dict[tuple[str, str], set[str]]:
    """Return (apiGroup, resource) -> verbs of the rendered ClusterRole."""
    (role,) = [obj for obj in render() if obj["kind"] == "ClusterRole"]
    result: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, f"unexpected rule fields: {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                result.setdefault((group, resource), set()).update(rule["verbs"])
    return result


def test_clusterrole_is_exactly_least_privilege(render: Any) -> None:
    """Every (group, resource) and verb is one the operator needs, and all of them are there."""
    assert grants(render) == EXPECTED


def test_clusterrole_has_no_wildcards_and_no_secrets(render: Any) -> None:
    """No `*` anywhere, no Secrets, no escalation verbs."""
    granted = grants(render)
    assert all(
        "*" not in (group, resource) and "*" not in verbs
        for (group, resource), verbs in granted.items()
    )
    assert not [
        key for key in granted if key[1] in {"secrets", "configmaps", "serviceaccounts/token"}
    ]
    assert all(
        verbs.isdisjoint({"escalate", "bind", "impersonate", "deletecollection"})
        for verbs in granted.values()
    )
