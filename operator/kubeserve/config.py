"""Operator settings: one pydantic-settings object read from ``KUBESERVE_OPERATOR_*``.

The Helm chart turns its values into environment variables on the operator
Deployment, so every setting here has a chart value. Structured settings (default
resources) are JSON in their variable, as pydantic-settings parses them. Builders take
an :class:`OperatorConfig` argument instead of reading the environment, so they stay
pure and tests pass explicit configs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kubeserve import __version__
from kubeserve.api.v1alpha1 import ResourceRequirements

ENV_PREFIX = "KUBESERVE_OPERATOR_"
IngressMode = Literal["gateway", "nginx", "none"]


def _default_resources() -> ResourceRequirements:
    """Requests/limits for predictors that set none."""
    return ResourceRequirements.model_validate(
        {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    )


class OperatorConfig(BaseSettings):
    """How the operator builds children (images, routing, defaults, timers)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    runtime_image: str = Field(
        default=f"ghcr.io/kubeserve/runtime:{__version__}",
        description="Serving runtime image (repository:tag); model.runtimeVersion replaces "
        "the tag.",
    )
    storage_initializer_image: str | None = Field(
        default=None,
        description="Image of the download init container; the runtime image when unset.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="Pull policy of predictor containers."
    )
    ingress_mode: IngressMode = Field(
        default="gateway",
        description="Route kind: gateway (Gateway API HTTPRoute), nginx (ingress-nginx "
        "canary Ingresses) or none (in-cluster Service only).",
    )
    gateway_name: str = Field(default="kubeserve", description="Gateway the HTTPRoutes attach to.")
    gateway_namespace: str | None = Field(
        default=None, description="Namespace of that Gateway; the route's own when unset."
    )
    gateway_section_name: str | None = Field(
        default=None, description="Listener of the Gateway; all listeners when unset."
    )
    gateway_mirror_mode: Literal["percent", "fraction", "full"] = Field(
        default="percent",
        description="How the HTTPRoute's RequestMirror filter states a share: `percent` "
        "(Gateway API >= v1.3 standard, v1.2 experimental), `fraction` (same versions), or "
        "`full` for older APIs, which mirror everything (mirror.percent < 100 is refused).",
    )
    domain_template: str = Field(
        default="{name}.{namespace}.example.com",
        description="Host name of an InferenceService; {name} and {namespace} are replaced.",
    )
    url_scheme: Literal["http", "https"] = Field(
        default="http", description="Scheme of status.url."
    )
    ingress_class: str = Field(default="nginx", description="IngressClass for nginx mode.")
    default_resources: ResourceRequirements = Field(
        default_factory=_default_resources,
        description="Resources of predictor containers that set none (JSON).",
    )
    prometheus_url: str | None = Field(
        default=None,
        description="Prometheus for canary analysis; the pods' /metrics are read when unset.",
    )
    reconcile_interval_seconds: float = Field(
        default=60.0, gt=0, description="Period of the slow safety-net reconcile timer."
    )
    metrics_port: int = Field(
        default=8080, ge=1, le=65535, description="Port of the operator's /metrics."
    )
    health_port: int = Field(
        default=8081, ge=1, le=65535, description="Port of the operator's /healthz (kopf)."
    )
    bind_address: str = Field(
        default="0.0.0.0", description="Address the metrics and health servers listen on."
    )
    history_limit: int = Field(
        default=10, ge=1, le=100, description="Default length of status.revisions.history."
    )
    network_policy: bool = Field(
        default=True,
        description="Render a NetworkPolicy per InferenceService unless its "
        "spec.networkPolicy.enabled says otherwise.",
    )
    network_policy_ingress_namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces whose pods (the Gateway's or ingress controller's) may reach "
        "the predictors' REST and gRPC ports (JSON list).",
    )
    network_policy_ingress_pod_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels those pods must also carry; any pod of the namespaces when empty "
        "(JSON object).",
    )
    network_policy_metrics_namespaces: list[str] = Field(
        default_factory=lambda: ["monitoring"],
        description="Namespaces whose pods may scrape the predictors' metrics port: "
        "Prometheus's, and the operator's own when it reads /metrics for canary analysis "
        "(JSON list).",
    )

    @field_validator("domain_template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        """Refuse templates with unknown placeholders at start-up, not at first use."""
        try:
            value.format(name="n", namespace="ns")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"domain_template {value!r} may only use {{name}} and {{namespace}}"
            ) from exc
        return value

    @property
    def initializer_image(self) -> str:
        """Image of the storage initializer."""
        return self.storage_initializer_image or self.runtime_image

    def host(self, name: str, namespace: str) -> str:
        """Host name of one InferenceService."""
        return self.domain_template.format(name=name, namespace=namespace)

    def image_for(self, runtime_version: str | None) -> str:
        """Runtime image, with the tag replaced when a runtimeVersion is given."""
        if not runtime_version:
            return self.runtime_image
        repository = self.runtime_image.split("@", 1)[0]
        if ":" in repository.rsplit("/", 1)[-1]:
            repository = repository.rsplit(":", 1)[0]
        return f"{repository}:{runtime_version}"
