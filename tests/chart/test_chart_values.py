"""values.yaml is fully documented, and values.schema.json refuses what it does not know.

helm validates values against the schema before rendering; these tests check that a
wrong key or type fails the install with a message naming the offending path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.chart.helm import HelmError


def mapping_keys(node: yaml.Node, path: str = "") -> Iterator[tuple[str, yaml.ScalarNode]]:
    """Yield (dotted path, key node) for every key of every mapping in a YAML tree."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            dotted = f"{path}.{key.value}" if path else str(key.value)
            yield dotted, key
            yield from mapping_keys(value, dotted)


def object_nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield every schema node that lists `properties`, with its path."""
    if "properties" in schema:
        yield path or "/", schema
        for name, child in schema["properties"].items():
            yield from object_nodes(child, f"{path}/{name}")
    for name, child in schema.get("definitions", {}).items():
        yield from object_nodes(child, f"#/definitions/{name}")


def test_every_values_key_has_a_comment(chart: Path) -> None:
    """Each key in values.yaml has a comment line right above it."""
    lines = (chart / "values.yaml").read_text().splitlines()
    root = yaml.compose("\n".join(lines))
    assert root is not None
    undocumented = [
        dotted
        for dotted, key in mapping_keys(root)
        if not lines[key.start_mark.line - 1].lstrip().startswith("#")
    ]
    assert undocumented == []


def test_schema_is_draft07_and_closed_at_every_level(chart: Path) -> None:
    """Every object with properties forbids additional ones."""
    schema = json.loads((chart / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    open_nodes = [
        path for path, node in object_nodes(schema) if node.get("additionalProperties") is not False
    ]
    assert open_nodes == []


def test_schema_covers_every_default_value(chart: Path) -> None:
    """Every key of values.yaml is described by the schema (and nothing else is allowed)."""
    schema = json.loads((chart / "values.schema.json").read_text())
    values = yaml.safe_load((chart / "values.yaml").read_text())

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        return resolve(schema["definitions"][ref.rsplit("/", 1)[-1]]) if ref else node

    def walk(value: Any, node: dict[str, Any], path: str) -> Iterator[str]:
        node = resolve(node)
        if isinstance(value, dict) and "properties" in node:
            for key, child in value.items():
                if key not in node["properties"]:
                    yield f"{path}.{key}"
                else:
                    yield from walk(child, node["properties"][key], f"{path}.{key}")

    assert list(walk(values, schema, "")) == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"operator.replica": "2"},
            r"at '/operator': additional properties 'replica' not allowed",
        ),
        ({"operator.replicas": "0"}, r"at '/operator/replicas'"),
        ({"operator.strategy.type": "BlueGreen"}, r"at '/operator/strategy/type'"),
        ({"operator.leaderElection.retryPeriodSeconds": "0"}, r"at '/operator/leaderElection"),
        ({"metrics.serviceMonitor.enable": "true"}, r"additional properties 'enable' not allowed"),
        ({"bogus": "1"}, r"additional properties 'bogus' not allowed"),
        ({"operator.metricsPort": "http"}, r"at '/operator/metricsPort': got string, want integer"),
        ({"metrics.serviceMonitor.enabled": "yes-please"}, r"at '/metrics/serviceMonitor/enabled'"),
        (
            {"config.ingressMode": "istio"},
            r"at '/config/ingressMode': value must be one of 'gateway', 'nginx', 'none'",
        ),
        ({"config.gateway.mirrorMode": "half"}, r"at '/config/gateway/mirrorMode'"),
        ({"config.historyLimit": "0"}, r"at '/config/historyLimit'"),
        (
            {"config.defaultResources.requests.cpu": "lots"},
            r"at '/config/defaultResources/requests/cpu'",
        ),
        ({"operator.image.pullPolicy": "Sometimes"}, r"at '/operator/image/pullPolicy'"),
        (
            {"metrics.prometheusRule.errorRatio.threshold": "5"},
            r"at '/metrics/prometheusRule/errorRatio/threshold'",
        ),
        (
            {"metrics.prometheusRule.latencyP99.thresholdSeconds": "0"},
            r"at '/metrics/prometheusRule/latencyP99/thresholdSeconds'",
        ),
        ({"metrics.prometheusRule.drift.for": "soon"}, r"at '/metrics/prometheusRule/drift/for'"),
        (
            {"metrics.prometheusRule.drift.severity": "Very Bad"},
            r"at '/metrics/prometheusRule/drift/severity'",
        ),
    ],
)
def test_schema_refuses_unknown_keys_and_wrong_types(
    render: Any, values: dict[str, str], message: str
) -> None:
    """helm template fails with a message naming the bad value's path."""
    with pytest.raises(
        HelmError, match=r"values don't meet the specifications of the schema"
    ) as caught:
        render(values)
    assert caught.match(message)
