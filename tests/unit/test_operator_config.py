"""Operator settings come from KUBESERVE_OPERATOR_* variables (fed by Helm values)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kubeserve.config import OperatorConfig


def test_defaults() -> None:
    """Without env the operator routes through a Gateway named kubeserve."""
    config = OperatorConfig()
    assert config.ingress_mode == "gateway"
    assert config.initializer_image == config.runtime_image
    assert config.host("iris", "ml") == "iris.ml.example.com"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scalars and JSON-structured settings are read from the environment."""
    monkeypatch.setenv("KUBESERVE_OPERATOR_INGRESS_MODE", "nginx")
    monkeypatch.setenv("KUBESERVE_OPERATOR_DOMAIN_TEMPLATE", "{namespace}-{name}.ml.corp")
    monkeypatch.setenv(
        "KUBESERVE_OPERATOR_DEFAULT_RESOURCES", '{"requests": {"cpu": "1", "memory": "2Gi"}}'
    )
    monkeypatch.setenv("KUBESERVE_OPERATOR_STORAGE_INITIALIZER_IMAGE", "example.org/init:1")
    config = OperatorConfig()
    assert config.ingress_mode == "nginx"
    assert config.host("iris", "ml") == "ml-iris.ml.corp"
    assert config.default_resources.to_dict() == {"requests": {"cpu": "1", "memory": "2Gi"}}
    assert config.initializer_image == "example.org/init:1"


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("INGRESS_MODE", "istio", "Input should be 'gateway', 'nginx' or 'none'"),
        ("DOMAIN_TEMPLATE", "{name}.{cluster}.example.com", "may only use {name} and {namespace}"),
        ("RECONCILE_INTERVAL_SECONDS", "0", "greater than 0"),
    ],
)
def test_bad_settings_fail_at_start(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    """A wrong setting stops the operator at start-up with the reason."""
    monkeypatch.setenv(f"KUBESERVE_OPERATOR_{env}", value)
    with pytest.raises(ValidationError, match=message):
        OperatorConfig()


@pytest.mark.parametrize(
    ("image", "version", "expected"),
    [
        ("ghcr.io/kubeserve/runtime:0.1.0", None, "ghcr.io/kubeserve/runtime:0.1.0"),
        ("ghcr.io/kubeserve/runtime:0.1.0", "0.2.0", "ghcr.io/kubeserve/runtime:0.2.0"),
        ("registry:5000/runtime", "1.0", "registry:5000/runtime:1.0"),
        ("registry:5000/runtime@sha256:abc", "1.0", "registry:5000/runtime:1.0"),
    ],
)
def test_runtime_version_replaces_the_tag(image: str, version: str | None, expected: str) -> None:
    """model.runtimeVersion swaps the tag (or digest) of the runtime image."""
    assert OperatorConfig(runtime_image=image).image_for(version) == expected
