"""TLS of the predictor pods: the Secret mounts, runtime settings, probe scheme, and the
cert-manager Certificate.

Limits first: the serving certificate is one per InferenceService (every revision and
variant mounts the same Secret), named for the ``<isvc>`` Service (short, namespaced,
``.svc`` and cluster-domain ``cluster.local`` names) and the route's host; a client that
reaches a per-revision Service by its own name must verify against one of those names.
A custom container gets the same files and HTTPS probes: it must serve TLS with them.

- ``secretName``: a kubernetes.io/tls Secret the user (or their own cert-manager
  Certificate) keeps; ``certManager``: the operator renders a ``cert-manager.io/v1``
  Certificate named after the InferenceService whose Secret is ``<isvc>-tls``.
- The Secret is mounted whole-key (``items``, never ``subPath``) so kubelet updates the
  files on rotation and the runtime reloads them; the client CA (``clientCA``, a Secret
  or ConfigMap key) likewise.
- Gateway mode with ``gatewayCA``: a ``BackendTLSPolicy`` (Gateway API v1.4 standard
  channel, ``v1``) tells the Gateway to speak TLS to every Service the HTTPRoute names,
  verifying the hostname ``<isvc>.<ns>.svc`` against the ConfigMap's ``ca.crt``.
  Without it the Gateway speaks clear text to a TLS port and the route fails; nothing
  gives the Gateway a client certificate, so ``clientCA`` and gateway routes do not mix
  unless the implementation configures one on the Gateway itself.
- Probes switch to ``HTTPS`` (kubelet does not verify the certificate and presents
  none; under mTLS the runtime exempts the probe paths).
"""

from __future__ import annotations

from typing import Any

from kubeserve.api.v1alpha1 import InferenceService, Tls
from kubeserve.builders.meta import ROUTE_COMPONENT, labels, object_meta
from kubeserve.config import OperatorConfig
from kubeserve.plan import TrafficPlan, workload_name
from kubeserve_runtime import contract

TLS_DIR = "/var/run/secrets/kubeserve/tls"
CLIENT_CA_DIR = "/var/run/secrets/kubeserve/client-ca"
CERT_KEY = "tls.crt"
KEY_KEY = "tls.key"
CA_FILE = "ca.crt"
TLS_VOLUME = "tls"
CLIENT_CA_VOLUME = "client-ca"
CERT_MANAGER_API = "cert-manager.io/v1"
CLUSTER_DOMAIN = "cluster.local"
GATEWAY_API = "gateway.networking.k8s.io/v1"


def serving_secret(isvc_name: str, tls: Tls) -> str:
    """The Secret holding the serving certificate: the user's, or the Certificate's."""
    return tls.secret_name or f"{isvc_name}-tls"


def tls_volumes(isvc_name: str, tls: Tls) -> list[dict[str, Any]]:
    """The pod volumes of the serving certificate and the client CA."""
    items = [{"key": CERT_KEY, "path": CERT_KEY}, {"key": KEY_KEY, "path": KEY_KEY}]
    volumes: list[dict[str, Any]] = [
        {
            "name": TLS_VOLUME,
            "secret": {
                "secretName": serving_secret(isvc_name, tls),
                "items": items,
                "defaultMode": 0o440,
            },
        }
    ]
    ca = tls.client_ca
    if ca is not None:
        ca_items = [{"key": ca.key, "path": CA_FILE}]
        source: dict[str, Any]
        if ca.secret_name is not None:
            source = {"secret": {"secretName": ca.secret_name, "items": ca_items}}
        else:
            source = {"configMap": {"name": ca.config_map_name, "items": ca_items}}
        volumes.append({"name": CLIENT_CA_VOLUME, **source})
    return volumes


def tls_mounts(tls: Tls) -> list[dict[str, Any]]:
    """The container mounts of the serving certificate and the client CA."""
    mounts = [{"name": TLS_VOLUME, "mountPath": TLS_DIR, "readOnly": True}]
    if tls.client_ca is not None:
        mounts.append({"name": CLIENT_CA_VOLUME, "mountPath": CLIENT_CA_DIR, "readOnly": True})
    return mounts


def tls_env(tls: Tls) -> dict[str, str]:
    """The runtime settings that point at the mounted files."""
    env = {
        contract.ENV_TLS_CERT_FILE: f"{TLS_DIR}/{CERT_KEY}",
        contract.ENV_TLS_KEY_FILE: f"{TLS_DIR}/{KEY_KEY}",
    }
    if tls.client_ca is not None:
        env[contract.ENV_TLS_CLIENT_CA_FILE] = f"{CLIENT_CA_DIR}/{CA_FILE}"
    return env


def with_tls(container: dict[str, Any], tls: Tls, runtime: bool) -> dict[str, Any]:
    """A copy of a serving container that mounts the TLS files and probes over HTTPS;
    the bundled ``runtime`` also gets the settings (before the user's variables)."""
    out = dict(container)
    out["volumeMounts"] = [*container.get("volumeMounts", ()), *tls_mounts(tls)]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe in container:
            http_get = {**container[probe]["httpGet"], "scheme": "HTTPS"}
            out[probe] = {**container[probe], "httpGet": http_get}
    if runtime:
        user = {var["name"] for var in container.get("env", ())}
        settings = [{"name": k, "value": v} for k, v in tls_env(tls).items() if k not in user]
        out["env"] = [*settings, *container.get("env", ())]
    return out


def dns_names(isvc: InferenceService, config: OperatorConfig) -> list[str]:
    """The names the certificate is for: the ``<isvc>`` Service's and the route host."""
    name, namespace = isvc.metadata.name, isvc.metadata.namespace
    names = [
        name,
        f"{name}.{namespace}",
        f"{name}.{namespace}.svc",
        f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}",
    ]
    if config.ingress_mode != "none":
        names.append(config.host(name, namespace))
    return names


def certificate(isvc: InferenceService, config: OperatorConfig) -> dict[str, Any] | None:
    """The cert-manager Certificate of ``spec.tls.certManager``, else None."""
    tls = isvc.spec.tls
    if tls is None or tls.cert_manager is None:
        return None
    issuer = tls.cert_manager.issuer_ref
    name = isvc.metadata.name
    return {
        "apiVersion": CERT_MANAGER_API,
        "kind": "Certificate",
        "metadata": object_meta(isvc, name, labels(name, ROUTE_COMPONENT)),
        "spec": {
            "secretName": serving_secret(name, tls),
            "dnsNames": dns_names(isvc, config),
            "issuerRef": {"name": issuer.name, "kind": issuer.kind, "group": issuer.group},
            "usages": ["server auth", "digital signature", "key encipherment"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        },
    }


def backend_tls_policy(
    isvc: InferenceService, plan: TrafficPlan, config: OperatorConfig
) -> dict[str, Any] | None:
    """The BackendTLSPolicy of gateway mode with ``spec.tls.gatewayCA``, else None."""
    tls = isvc.spec.tls
    if config.ingress_mode != "gateway" or tls is None or tls.gateway_ca is None:
        return None
    name, namespace = isvc.metadata.name, isvc.metadata.namespace
    backends = [*plan.backends, *(r.backend for r in plan.header_routes)]
    if plan.mirror is not None:
        backends.append(plan.mirror.backend)
    services = sorted({workload_name(name, b.component, b.revision) for b in backends})
    if not services:
        return None
    ca_ref = {"group": "", "kind": "ConfigMap", "name": tls.gateway_ca.config_map_name}
    return {
        "apiVersion": GATEWAY_API,
        "kind": "BackendTLSPolicy",
        "metadata": object_meta(isvc, name, labels(name, ROUTE_COMPONENT)),
        "spec": {
            "targetRefs": [
                {"group": "", "kind": "Service", "name": service, "sectionName": "http"}
                for service in services
            ],
            "validation": {
                "caCertificateRefs": [ca_ref],
                "hostname": f"{name}.{namespace}.svc",
            },
        },
    }
