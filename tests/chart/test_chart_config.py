"""Every operator setting has a chart value, and the chart's ConfigMap parses as one config.

The operator reads KUBESERVE_OPERATOR_* variables (kubeserve.config.OperatorConfig); the
chart's ConfigMap is those variables. Here the rendered ConfigMap is parsed by the real
settings class, so a renamed setting or a wrong format fails here, not in a cluster.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve import __version__
from kubeserve.config import ENV_PREFIX, OperatorConfig

CUSTOM: dict[str, Any] = {
    "config": {
        "runtimeImage": {"repository": "registry.example/runtime", "tag": "2.0.0"},
        "storageInitializerImage": "registry.example/init:1",
        "imagePullPolicy": "Always",
        "ingressMode": "nginx",
        "gateway": {
            "name": "public",
            "namespace": "gateways",
            "sectionName": "https",
            "mirrorMode": "full",
        },
        "ingressClassName": "nginx-internal",
        "domainTemplate": "{name}-{namespace}.models.example.com",
        "urlScheme": "https",
        "prometheusUrl": "http://prometheus.monitoring:9090",
        "reconcileIntervalSeconds": 12.5,
        "historyLimit": 3,
        "defaultResources": {"requests": {"cpu": "250m"}},
        "networkPolicy": {
            "enabled": False,
            "ingressNamespaces": ["envoy-gateway-system"],
            "ingressPodLabels": {"app": "envoy"},
            "metricsNamespaces": ["prometheus", "kubeserve-system"],
        },
    },
    "operator": {"metricsPort": 9090, "healthPort": 9091},
}


@pytest.fixture(scope="module")
def custom_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the non-default values file."""
    path = tmp_path_factory.mktemp("values") / "custom.yaml"
    path.write_text(yaml.safe_dump(CUSTOM))
    return path


def config_env(render: Any, values_file: Path | None = None) -> dict[str, str]:
    """Return the data of the rendered operator ConfigMap."""
    files = (values_file,) if values_file else ()
    (config_map,) = [obj for obj in render(values_files=files) if obj["kind"] == "ConfigMap"]
    data: dict[str, str] = config_map["data"]
    return data


def parse(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> OperatorConfig:
    """Build the operator's config from exactly these variables."""
    for name in [name for name in os.environ if name.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return OperatorConfig()


def test_default_values_give_the_operator_defaults(
    render: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With default values the operator runs with its own defaults (bind address aside)."""
    config = parse(config_env(render), monkeypatch)
    expected = {**OperatorConfig().model_dump(), "bind_address": "0.0.0.0"}
    assert config.model_dump() == expected
    assert config.runtime_image == f"ghcr.io/kubeserve/runtime:{__version__}"


def test_every_setting_has_a_chart_value(render: Any, custom_file: Path) -> None:
    """Each OperatorConfig field is fed by the chart; each variable is a real field."""
    fields = {ENV_PREFIX + name.upper() for name in OperatorConfig.model_fields}
    rendered = set(config_env(render)) | set(config_env(render, custom_file))
    assert rendered == fields


def test_custom_values_reach_the_operator(
    render: Any, custom_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Non-default values arrive in the operator's config with the right types."""
    config = parse(config_env(render, custom_file), monkeypatch)
    assert config.runtime_image == "registry.example/runtime:2.0.0"
    assert config.initializer_image == "registry.example/init:1"
    assert config.image_pull_policy == "Always"
    assert config.ingress_mode == "nginx"
    assert (config.gateway_name, config.gateway_namespace, config.gateway_section_name) == (
        "public",
        "gateways",
        "https",
    )
    assert config.gateway_mirror_mode == "full"
    assert config.ingress_class == "nginx-internal"
    assert config.host("iris", "ml") == "iris-ml.models.example.com"
    assert config.url_scheme == "https"
    assert config.prometheus_url == "http://prometheus.monitoring:9090"
    assert config.reconcile_interval_seconds == 12.5
    assert config.history_limit == 3
    assert (
        config.default_resources.model_dump(by_alias=True, exclude_none=True)["requests"]["cpu"]
        == "250m"
    )
    assert (config.metrics_port, config.health_port) == (9090, 9091)
    assert config.network_policy is False
    assert config.network_policy_ingress_namespaces == ["envoy-gateway-system"]
    assert config.network_policy_ingress_pod_labels == {"app": "envoy"}
    # the release namespace (the operator's: canary analysis reads /metrics) once
    assert config.network_policy_metrics_namespaces == ["prometheus", "kubeserve-system"]
