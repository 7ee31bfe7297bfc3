"""spec.networkPolicy in the builders: one policy per InferenceService selecting all its
pods, ingress only from the configured peers, egress open unless rules are given, and
on/off from the operator's config unless the spec decides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.api.v1alpha1 import InferenceService
from kubeserve.builders import build_children
from kubeserve.config import OperatorConfig
from kubeserve.plan import Backend, TrafficPlan, Workload

INPUTS = Path(__file__).resolve().parents[1] / "golden" / "inputs"
PLAN = TrafficPlan(
    workloads=(Workload("predictor", "1a2b3c4d", 1, 1),),
    backends=(Backend("predictor", "1a2b3c4d", 100),),
)
SERVING = [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 8081}]
METRICS = [{"protocol": "TCP", "port": 8082}]


def policies(spec: dict[str, Any] | None, config: OperatorConfig) -> list[dict[str, Any]]:
    """The NetworkPolicies built for the iris example with ``spec.networkPolicy``."""
    obj = yaml.safe_load((INPUTS / "iris.yaml").read_text())
    if spec is not None:
        obj["spec"]["networkPolicy"] = spec
    predictors = {("predictor", "1a2b3c4d"): obj["spec"]["predictor"]}
    built = build_children(InferenceService.model_validate(obj), PLAN, predictors, config)
    return [c for c in built if c["kind"] == "NetworkPolicy"]


def namespaces(*names: str) -> dict[str, Any]:
    """The namespace selector of these names."""
    return {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(names)}
        ]
    }


def test_default_policy_admits_gateways_own_namespace_and_monitoring() -> None:
    """On by default: gateway namespaces (and labels) and the own namespace reach the
    serving ports, monitoring namespaces the metrics port; egress is not restricted."""
    config = OperatorConfig(
        network_policy_ingress_namespaces=["gateways", "envoy-gateway-system"],
        network_policy_ingress_pod_labels={"app": "envoy"},
        network_policy_metrics_namespaces=["monitoring", "kubeserve"],
    )
    (policy,) = policies(None, config)
    assert policy["metadata"]["name"] == "iris"
    assert policy["metadata"]["ownerReferences"][0]["kind"] == "InferenceService"
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"serving.kubeserve.io/inferenceservice": "iris"}}
    assert spec["policyTypes"] == ["Ingress"]
    assert "egress" not in spec
    assert spec["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": namespaces("envoy-gateway-system", "gateways"),
                    "podSelector": {"matchLabels": {"app": "envoy"}},
                }
            ],
            "ports": SERVING,
        },
        {"from": [{"podSelector": {}}], "ports": SERVING},
        {"from": [{"namespaceSelector": namespaces("kubeserve", "monitoring")}], "ports": METRICS},
    ]


def test_same_namespace_opt_out_and_egress_rules() -> None:
    """allowSameNamespace false drops the namespace rule; egress rules restrict egress."""
    dns = {"to": [{"namespaceSelector": {}}], "ports": [{"protocol": "UDP", "port": 53}]}
    (policy,) = policies(
        {"allowSameNamespace": False, "egress": [dns]},
        OperatorConfig(network_policy_metrics_namespaces=[]),
    )
    assert policy["spec"]["ingress"] == []
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["egress"] == [dns]


@pytest.mark.parametrize(
    ("spec", "default", "rendered"),
    [
        (None, True, True),
        (None, False, False),
        ({"enabled": False}, True, False),
        ({"enabled": True}, False, True),
        ({"allowSameNamespace": False}, False, False),
    ],
)
def test_spec_overrides_the_operator_default(
    spec: dict[str, Any] | None, default: bool, rendered: bool
) -> None:
    """spec.networkPolicy.enabled wins; unset, the operator's config decides."""
    assert bool(policies(spec, OperatorConfig(network_policy=default))) is rendered
