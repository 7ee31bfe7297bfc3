"""The NetworkPolicy of one InferenceService: who may reach its predictor pods.

Limits first: a NetworkPolicy is only as good as the CNI that enforces it (Calico,
Cilium, Antrea, kube-router, OVN-Kubernetes and Weave Net do; flannel and the plain
bridge plugin do not, and there it is silently ignored). Most enforcing CNIs let the
node itself (kubelet probes, host-network pods) through whatever the policy says.
Peers are matched by namespace name (the ``kubernetes.io/metadata.name`` label the API
server sets) and pod labels, not by identity: anything that can run a pod with those
labels in those namespaces is let in; TLS/mTLS and auth are what check identity.

One policy selects every pod of the InferenceService (all revisions and variants, by
the ``serving.kubeserve.io/inferenceservice`` label) and allows, on ingress:

- the REST and gRPC ports from the operator's configured gateway / ingress-controller
  namespaces (optionally only pods with given labels);
- the same ports from any pod of the InferenceService's own namespace
  (``allowSameNamespace``, default true);
- the metrics port from the configured monitoring namespaces (the operator's own is
  added by the chart, for canary analysis without Prometheus).

Everything else inbound is dropped. Egress stays open unless ``egress`` rules are given
(then only those, so DNS and the model store must be listed by the user). Every field
the API server would default (``protocol: TCP``, ``policyTypes``) is written, so the
applied object equals the stored one.
"""

from __future__ import annotations

from typing import Any

from kubeserve.api.v1alpha1 import InferenceService
from kubeserve.builders.meta import ROUTE_COMPONENT, labels, object_meta
from kubeserve.config import OperatorConfig
from kubeserve_runtime.contract import GRPC_PORT, HTTP_PORT, LABEL_ISVC, METRICS_PORT

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every namespace to its name (Kubernetes >= 1.22)."""


def enabled(isvc: InferenceService, config: OperatorConfig) -> bool:
    """Whether the InferenceService gets a NetworkPolicy (its choice, else the config's)."""
    policy = isvc.spec.network_policy
    if policy is not None and policy.enabled is not None:
        return policy.enabled
    return config.network_policy


def _ports(*numbers: int) -> list[dict[str, Any]]:
    """NetworkPolicy ports, protocol written out."""
    return [{"protocol": "TCP", "port": number} for number in numbers]


def _namespaces(names: list[str]) -> dict[str, Any]:
    """A namespace selector for these names."""
    expression = {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": sorted(set(names))}
    return {"matchExpressions": [expression]}


def ingress_rules(isvc: InferenceService, config: OperatorConfig) -> list[dict[str, Any]]:
    """The allowed inbound traffic, one rule per kind of peer."""
    policy = isvc.spec.network_policy
    serving = _ports(HTTP_PORT, GRPC_PORT)
    rules: list[dict[str, Any]] = []
    if config.network_policy_ingress_namespaces:
        peer: dict[str, Any] = {
            "namespaceSelector": _namespaces(config.network_policy_ingress_namespaces)
        }
        if config.network_policy_ingress_pod_labels:
            peer["podSelector"] = {"matchLabels": dict(config.network_policy_ingress_pod_labels)}
        rules.append({"from": [peer], "ports": serving})
    if policy is None or policy.allow_same_namespace:
        rules.append({"from": [{"podSelector": {}}], "ports": serving})
    if config.network_policy_metrics_namespaces:
        peer = {"namespaceSelector": _namespaces(config.network_policy_metrics_namespaces)}
        rules.append({"from": [peer], "ports": _ports(METRICS_PORT)})
    return rules


def network_policy(isvc: InferenceService, config: OperatorConfig) -> dict[str, Any] | None:
    """The InferenceService's NetworkPolicy, or None when it has none."""
    if not enabled(isvc, config):
        return None
    name = isvc.metadata.name
    policy = isvc.spec.network_policy
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": {LABEL_ISVC: name}},
        "policyTypes": ["Ingress"],
        "ingress": ingress_rules(isvc, config),
    }
    if policy is not None and policy.egress is not None:
        spec["policyTypes"] = ["Ingress", "Egress"]
        spec["egress"] = [dict(rule) for rule in policy.egress]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(isvc, name, labels(name, ROUTE_COMPONENT)),
        "spec": spec,
    }
