"""The chart's RBAC grants exactly what the operator uses, in the scope it works in.

Cluster-wide (no watchNamespaces) the operator's rules are a ClusterRole; with
watchNamespaces they are a Role in each watched namespace and nothing is cluster-wide.
The leader-election Lease has its own Role in the release namespace, limited to one
Lease name. tests/chart/test_chart_rbac_cluster.py runs the operator with exactly these
objects against the real API server in both modes.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubeserve.chart import helm

CHILD = {"list", "watch", "create", "patch", "delete"}
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("serving.kubeserve.io", "inferenceservices"): {"get", "list", "watch"},
    ("serving.kubeserve.io", "inferenceservices/status"): {"patch"},
    ("apps", "deployments"): CHILD,
    ("", "services"): CHILD,
    ("autoscaling", "horizontalpodautoscalers"): CHILD,
    ("policy", "poddisruptionbudgets"): CHILD,
    ("gateway.networking.k8s.io", "httproutes"): CHILD,
    ("gateway.networking.k8s.io", "backendtlspolicies"): CHILD,
    ("networking.k8s.io", "ingresses"): CHILD,
    ("cert-manager.io", "certificates"): CHILD,
    ("networking.k8s.io", "networkpolicies"): CHILD,
    ("", "pods"): {"list"},
    ("", "events"): {"create"},
}
LEASE_RULES = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": [helm.RELEASE],
        "verbs": ["get", "update"],
    },
]
RBAC_KINDS = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

Grants = dict[tuple[str, str], set[str]]


def grants(role: dict[str, Any]) -> Grants:
    """Return (apiGroup, resource) -> verbs of one rendered (Cluster)Role."""
    result: Grants = {}
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, f"unexpected rule fields: {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                result.setdefault((group, resource), set()).update(rule["verbs"])
    return result


def rbac(render: Any, values: dict[str, str] | None = None) -> dict[tuple[str, str, str], Any]:
    """Return the rendered RBAC objects keyed by (kind, namespace, name)."""
    return {
        (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]): obj
        for obj in render(values)
        if obj["kind"] in RBAC_KINDS
    }


def test_cluster_wide_mode_is_one_clusterrole_of_exactly_the_calls_made(render: Any) -> None:
    objects = rbac(render)
    lease = f"{helm.RELEASE}-leader-election"
    assert set(objects) == {
        ("ClusterRole", "", helm.RELEASE),
        ("ClusterRoleBinding", "", helm.RELEASE),
        ("Role", helm.NAMESPACE, lease),
        ("RoleBinding", helm.NAMESPACE, lease),
    }
    assert grants(objects["ClusterRole", "", helm.RELEASE]) == EXPECTED
    assert objects["Role", helm.NAMESPACE, lease]["rules"] == LEASE_RULES


def test_watched_namespaces_get_roles_and_nothing_cluster_wide(render: Any) -> None:
    objects = rbac(render, {"operator.watchNamespaces": "{ml,ml-staging}"})
    assert {kind for kind, _, _ in objects} == {"Role", "RoleBinding"}
    for ns in ("ml", "ml-staging"):
        assert grants(objects["Role", ns, helm.RELEASE]) == EXPECTED
        binding = objects["RoleBinding", ns, helm.RELEASE]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": helm.RELEASE,
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": helm.RELEASE, "namespace": helm.NAMESPACE}
        ]
    lease = objects["Role", helm.NAMESPACE, f"{helm.RELEASE}-leader-election"]
    assert lease["rules"] == LEASE_RULES
    assert ("Role", helm.NAMESPACE, helm.RELEASE) not in objects  # the release ns is not watched


def test_without_leader_election_there_is_no_lease_role(render: Any) -> None:
    objects = rbac(render, {"operator.leaderElection.enabled": "false"})
    assert {kind for kind, _, _ in objects} == {"ClusterRole", "ClusterRoleBinding"}


@pytest.mark.parametrize(
    "values", [{}, {"operator.watchNamespaces": "{ml}"}], ids=["cluster", "ns"]
)
def test_no_wildcards_no_secrets_no_escalation(render: Any, values: dict[str, str]) -> None:
    """No `*` anywhere, no Secrets, no escalation verbs, in any rendered role."""
    for key, obj in rbac(render, values).items():
        if key[0] not in ("ClusterRole", "Role"):
            continue
        granted = grants(
            {"rules": [{k: v for k, v in r.items() if k != "resourceNames"} for r in obj["rules"]]}
        )
        assert all(
            "*" not in (group, resource) and "*" not in verbs
            for (group, resource), verbs in granted.items()
        )
        assert not [
            k for k in granted if k[1] in {"secrets", "configmaps", "serviceaccounts/token"}
        ]
        assert all(
            verbs.isdisjoint({"escalate", "bind", "impersonate", "deletecollection"})
            for verbs in granted.values()
        )
