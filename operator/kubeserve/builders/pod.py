"""The predictor pod: storage initializer, serving container, probes, hardening.

The pod passes Pod Security "restricted": non-root (uid 1000), no privilege
escalation, all capabilities dropped, seccomp RuntimeDefault, read-only root
filesystem (writable emptyDirs for /mnt/models and /tmp), no service-account token.
Both emptyDirs have a size limit (the kubelet evicts a pod that exceeds one): /mnt/models
``storageSizeLimit``, also passed to the download as ``KUBESERVE_MAX_MODEL_BYTES`` so an
oversized model fails with a message instead of an eviction; /tmp a fixed 1Gi.

- Shutdown: the runtime keeps serving, reporting not-ready, for ``shutdownDelaySeconds``
  after SIGTERM (so endpoints and gateways stop routing to it first), then drains
  in-flight requests for at most ``DRAIN_TIMEOUT_SECONDS``; the grace period covers both
  plus a margin, so the kubelet never kills a pod that is still draining.
- Spread: each revision's replicas spread over nodes and zones (``ScheduleAnyway``, so a
  one-node cluster still schedules them) unless the predictor sets its own constraints.

- ``model``: an init container runs ``kubeserve-runtime download <storageUri>
  /mnt/models``; credentials come from the referenced Secret mounted read-only at
  /var/run/secrets/kubeserve/storage (``KUBESERVE_STORAGE_SECRET_DIR``), never as env
  values visible in ``kubectl describe``. ``pvc://<claim>/...`` mounts the claim
  read-only at /mnt/pvc/<claim> in both containers and links instead of copying.
  The runtime container is ``kubeserve-runtime serve`` configured by KUBESERVE_* env.
- ``containers``: the custom container replaces the runtime and gets the same ports,
  probes and hardening; no init container.
- ``auth``: tokens mode mounts the Secret's ``tokens`` key (runtime or custom
  container). The JWT modes configure the runtime by KUBESERVE_AUTH_* env; serviceAccount
  mode also mounts, in the runtime container only, a projected volume with the pod's
  ServiceAccount token (audience: the API server) and the cluster CA (the
  ``kube-root-ca.crt`` ConfigMap every namespace has), which the runtime uses to read
  ``/.well-known/openid-configuration`` and ``/openid/v1/jwks`` from
  ``https://kubernetes.default.svc``. The pod keeps ``automountServiceAccountToken:
  false``: no other container gets a token.
- ``spec.feedback``: the Secret's ``key`` is mounted read-only at
  /var/run/secrets/kubeserve/feedback in the runtime container of every revision and
  variant (one key, so any replica verifies any other's tokens); the runtime reads it
  through ``KUBESERVE_FEEDBACK_KEY_FILE``. The operator names the Secret and never reads it.
- ``KUBESERVE_COMPONENT`` (the variant label of the runtime's request and feedback
  metrics) is rendered for every variant, and for the main predictor only with feedback
  or a logger: the runtime's default is ``predictor``, so its pods stay unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kubeserve.api.v1alpha1 import (
    DEFAULT_SPREAD_KEYS,
    DEFAULT_STORAGE_SIZE_LIMIT,
    Auth,
    CustomContainer,
    EnvVar,
    Feedback,
    Model,
    Predictor,
    ResourceRequirements,
    Tls,
    TopologySpreadConstraint,
    canonical_size,
    size_bytes,
)
from kubeserve.builders.payloadlog import LoggerParts, logger_parts
from kubeserve.builders.tls import tls_volumes, with_tls
from kubeserve.config import OperatorConfig
from kubeserve_runtime import contract
from kubeserve_runtime.contract import GRPC_PORT, HTTP_PORT, METRICS_PORT, MODEL_DIR, PVC_ROOT

STORAGE_SECRET_DIR = "/var/run/secrets/kubeserve/storage"
AUTH_DIR = "/var/run/secrets/kubeserve/auth"
AUTH_KEY = "tokens"
ISSUER_DIR = "/var/run/secrets/kubeserve/issuer"
"""serviceAccount mode: the pod's own ServiceAccount token and the cluster CA, with which
the runtime reads the API server's discovery document and JWKS (runtime container only)."""
ISSUER_TOKEN_SECONDS = 3600
RUN_AS = 1000
RUNTIME_CONTAINER = "kserve-container"
INITIALIZER_CONTAINER = "storage-initializer"
DRAIN_TIMEOUT_SECONDS = 30
"""Longest the runtime finishes in-flight requests after the shutdown delay (set explicitly)."""
GRACE_MARGIN_SECONDS = 10
"""Grace period beyond delay + drain: process exit, gRPC stop, the kubelet's own lag."""
TMP_SIZE_LIMIT = "1Gi"
"""Size limit of /tmp (HOME, library caches); models belong in /mnt/models."""


def container_security_context() -> dict[str, Any]:
    """Pod Security "restricted" settings of one container."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    """Pod Security "restricted" settings of the pod."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _resources(resources: ResourceRequirements | None, config: OperatorConfig) -> dict[str, Any]:
    """The container's resources: the user's as given, else the operator's defaults."""
    return (resources or config.default_resources).to_dict()


def _env(defaults: dict[str, str], user: list[EnvVar] | None) -> list[dict[str, Any]]:
    """Operator env first; a user variable of the same name replaces it (no duplicates)."""
    merged: dict[str, dict[str, Any]] = {
        name: {"name": name, "value": value} for name, value in defaults.items()
    }
    for var in user or ():
        merged.pop(var.name, None)
        merged[var.name] = var.to_dict()
    return list(merged.values())


def _ports() -> list[dict[str, Any]]:
    """The serving ports (REST, gRPC, metrics)."""
    return [
        {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
        {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
    ]


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    """An HTTP GET probe on the REST port."""
    return {
        "httpGet": {"path": path, "port": HTTP_PORT, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "successThreshold": 1,
        "failureThreshold": failures,
    }


def _probes() -> dict[str, Any]:
    """Readiness/liveness on the OIP health endpoints; a startup probe covers loading."""
    return {
        "startupProbe": _probe(contract.LIVE_PATH, period=5, failures=120),
        "readinessProbe": _probe(contract.READY_PATH, period=5, failures=3),
        "livenessProbe": _probe(contract.LIVE_PATH, period=10, failures=3),
    }


def termination_grace_seconds(predictor: Predictor) -> int:
    """The pod's grace period: the shutdown delay, the drain, and a margin."""
    return predictor.shutdown_delay_seconds + DRAIN_TIMEOUT_SECONDS + GRACE_MARGIN_SECONDS


def topology_spread(predictor: Predictor, selector: dict[str, str]) -> list[dict[str, Any]]:
    """Spread constraints over the revision's pods: the predictor's, else nodes and zones."""
    constraints = predictor.topology_spread_constraints
    if constraints is None:
        constraints = [
            TopologySpreadConstraint.model_validate({"topologyKey": key})
            for key in DEFAULT_SPREAD_KEYS
        ]
    out = []
    for constraint in constraints:
        item = constraint.model_dump(mode="json", by_alias=True, exclude_none=True)
        item["labelSelector"] = {"matchLabels": dict(selector)}
        out.append(item)
    return out


def _pvc_claim(storage_uri: str) -> str | None:
    """The claim name of a pvc:// URI, else None."""
    parts = urlsplit(storage_uri)
    return parts.netloc if parts.scheme == "pvc" else None


def auth_env(auth: Auth) -> dict[str, str]:
    """KUBESERVE_AUTH_* settings of the runtime container for one auth block."""
    if auth.mode == "tokens":
        return {contract.ENV_AUTH_TOKEN_FILE: f"{AUTH_DIR}/{AUTH_KEY}"}
    env = {contract.ENV_AUTH_MODE: auth.mode, contract.ENV_AUTH_AUDIENCE: auth.audience or ""}
    if auth.mode == "serviceAccount":
        env[contract.ENV_AUTH_DISCOVERY_URL] = contract.IN_CLUSTER_API + contract.DISCOVERY_PATH
        env[contract.ENV_AUTH_JWKS_URL] = contract.IN_CLUSTER_API + contract.SA_JWKS_PATH
        env[contract.ENV_AUTH_CA_FILE] = f"{ISSUER_DIR}/ca.crt"
        env[contract.ENV_AUTH_FETCH_TOKEN_FILE] = f"{ISSUER_DIR}/token"
    if auth.issuer is not None:
        env[contract.ENV_AUTH_ISSUER] = auth.issuer
    if auth.allow:
        env[contract.ENV_AUTH_ALLOW] = json.dumps(list(auth.allow), separators=(",", ":"))
    if auth.required_claims:
        env[contract.ENV_AUTH_REQUIRED_CLAIMS] = json.dumps(
            dict(auth.required_claims), sort_keys=True, separators=(",", ":")
        )
    return env


def issuer_volume() -> dict[str, Any]:
    """serviceAccount mode: the pod's ServiceAccount token and the cluster CA."""
    return {
        "name": "issuer",
        "projected": {
            "defaultMode": 0o440,
            "sources": [
                {
                    "serviceAccountToken": {
                        "path": "token",
                        "expirationSeconds": ISSUER_TOKEN_SECONDS,
                    }
                },
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
            ],
        },
    }


@dataclass(frozen=True)
class FeedbackContext:
    """spec.feedback and the component (variant) whose pods are being built."""

    spec: Feedback
    component: str


def _runtime_env(
    isvc_name: str,
    revision: str,
    predictor: Predictor,
    model: Model,
    auth: Auth | None,
    feedback: FeedbackContext | None,
    logger_env: dict[str, str],
    component: str,
) -> dict[str, str]:
    """KUBESERVE_* settings of the runtime container."""
    env = {
        contract.ENV_MODEL_DIR: MODEL_DIR,
        contract.ENV_MODEL_NAME: isvc_name,
        contract.ENV_MODEL_VERSION: revision,
        contract.ENV_MODEL_FORMAT: model.model_format.name,
        contract.ENV_HTTP_PORT: str(HTTP_PORT),
        contract.ENV_GRPC_PORT: str(GRPC_PORT),
        contract.ENV_METRICS_PORT: str(METRICS_PORT),
        contract.ENV_SHUTDOWN_DELAY_SECONDS: str(predictor.shutdown_delay_seconds),
        contract.ENV_DRAIN_TIMEOUT_SECONDS: str(DRAIN_TIMEOUT_SECONDS),
    }
    if predictor.batcher is not None:
        env[contract.ENV_MAX_BATCH_SIZE] = str(predictor.batcher.max_batch_size)
        env[contract.ENV_MAX_LATENCY_MS] = str(predictor.batcher.max_latency_ms)
    if predictor.input_schema is not None:
        env[contract.ENV_INPUT_SCHEMA] = json.dumps(
            predictor.input_schema.to_dict(), sort_keys=True, separators=(",", ":")
        )
    if auth is not None:
        env.update(auth_env(auth))
    if feedback is not None or component != contract.DEFAULT_COMPONENT:
        env[contract.ENV_COMPONENT] = component
    if feedback is not None:
        env[contract.ENV_FEEDBACK_KEY_FILE] = (
            f"{contract.FEEDBACK_KEY_DIR}/{contract.FEEDBACK_SECRET_KEY}"
        )
        env[contract.ENV_FEEDBACK_TOKEN_TTL_SECONDS] = str(feedback.spec.token_ttl_seconds)
        env[contract.ENV_FEEDBACK_TASK] = feedback.spec.task
    env.update(logger_env)
    return env


def _base_mounts() -> list[dict[str, Any]]:
    """Writable scratch space: the model directory and /tmp."""
    return [
        {"name": "model", "mountPath": MODEL_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]


def _model_containers(
    isvc_name: str,
    revision: str,
    predictor: Predictor,
    model: Model,
    auth: Auth | None,
    feedback: FeedbackContext | None,
    config: OperatorConfig,
    logger: LoggerParts,
    component: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (init containers, containers, extra volumes) for a bundled-runtime model."""
    volumes: list[dict[str, Any]] = list(logger.volumes)
    init_mounts = _base_mounts()
    runtime_mounts = _base_mounts()
    init_env: list[dict[str, Any]] = [
        {
            "name": contract.ENV_MAX_MODEL_BYTES,
            "value": str(size_bytes(model.storage_size_limit)),
        }
    ]
    args = [contract.DOWNLOAD, model.storage_uri, MODEL_DIR]
    claim = _pvc_claim(model.storage_uri)
    if claim is not None:
        volumes.append(
            {"name": "pvc", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        )
        mount = {"name": "pvc", "mountPath": f"{PVC_ROOT}/{claim}", "readOnly": True}
        init_mounts.append(mount)
        runtime_mounts.append(dict(mount))
        args.append(contract.LINK_FLAG)
    if model.storage_secret_ref is not None:
        volumes.append(
            {
                "name": "storage-secret",
                "secret": {"secretName": model.storage_secret_ref.name, "defaultMode": 0o440},
            }
        )
        init_mounts.append(
            {"name": "storage-secret", "mountPath": STORAGE_SECRET_DIR, "readOnly": True}
        )
        init_env.append({"name": contract.ENV_STORAGE_SECRET_DIR, "value": STORAGE_SECRET_DIR})
    if auth is not None and auth.mode == "tokens":
        runtime_mounts.append({"name": "auth", "mountPath": AUTH_DIR, "readOnly": True})
    if auth is not None and auth.mode == "serviceAccount":
        runtime_mounts.append({"name": "issuer", "mountPath": ISSUER_DIR, "readOnly": True})
        volumes.append(issuer_volume())
    if feedback is not None:
        volumes.append(
            {
                "name": "feedback",
                "secret": {
                    "secretName": feedback.spec.secret_ref.name,
                    "items": [
                        {"key": contract.FEEDBACK_SECRET_KEY, "path": contract.FEEDBACK_SECRET_KEY}
                    ],
                    "defaultMode": 0o440,
                },
            }
        )
        runtime_mounts.append(
            {"name": "feedback", "mountPath": contract.FEEDBACK_KEY_DIR, "readOnly": True}
        )
    runtime_mounts += logger.mounts
    initializer = {
        "name": INITIALIZER_CONTAINER,
        "image": config.initializer_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": [contract.RUNTIME_COMMAND],
        "args": args,
        "env": init_env,
        "resources": _resources(None, config),
        "securityContext": container_security_context(),
        "volumeMounts": init_mounts,
    }
    runtime = {
        "name": RUNTIME_CONTAINER,
        "image": config.image_for(model.runtime_version),
        "imagePullPolicy": config.image_pull_policy,
        "command": [contract.RUNTIME_COMMAND],
        "args": [contract.SERVE],
        "env": _env(
            _runtime_env(
                isvc_name, revision, predictor, model, auth, feedback, logger.env, component
            ),
            model.env,
        ),
        "ports": _ports(),
        **_probes(),
        "resources": _resources(model.resources, config),
        "securityContext": container_security_context(),
        "volumeMounts": runtime_mounts,
    }
    return [initializer], [runtime], volumes


def _custom_container(
    container: CustomContainer, auth_secret: str | None, config: OperatorConfig
) -> dict[str, Any]:
    """The user's serving container with kubeserve's ports, probes and hardening."""
    mounts = _base_mounts()
    if auth_secret is not None:
        mounts.append({"name": "auth", "mountPath": AUTH_DIR, "readOnly": True})
    out: dict[str, Any] = {
        "name": container.name,
        "image": container.image,
        "imagePullPolicy": config.image_pull_policy,
    }
    if container.command is not None:
        out["command"] = list(container.command)
    if container.args is not None:
        out["args"] = list(container.args)
    if container.env:
        out["env"] = _env({}, container.env)
    out.update(
        {
            "ports": _ports(),
            **_probes(),
            "resources": _resources(container.resources, config),
            "securityContext": container_security_context(),
            "volumeMounts": mounts,
        }
    )
    return out


def pod_template(
    isvc_name: str,
    revision: str,
    predictor: Predictor,
    auth: Auth | None,
    pod_labels: dict[str, str],
    selector: dict[str, str],
    config: OperatorConfig,
    feedback: FeedbackContext | None = None,
    *,
    namespace: str,
    component: str,
    tls: Tls | None = None,
) -> dict[str, Any]:
    """Return the Deployment's pod template for one revision of one predictor.

    `selector` selects exactly this revision's pods (the spread constraints count them);
    `namespace` and `component` (predictor or the variant) name the payload logs' origin.
    `feedback` (spec.feedback and the component) mounts the key Secret into the bundled
    runtime; custom containers get no key (they are not the runtime).
    With `tls` the serving container serves TLS (:mod:`kubeserve.builders.tls`).
    """
    model_limit = canonical_size(
        predictor.model.storage_size_limit if predictor.model else DEFAULT_STORAGE_SIZE_LIMIT
    )
    volumes: list[dict[str, Any]] = [
        {"name": "model", "emptyDir": {"sizeLimit": model_limit}},
        {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
    ]
    auth_secret = auth.secret_ref.name if auth is not None and auth.secret_ref else None
    init_containers: list[dict[str, Any]] = []
    if predictor.model is not None:
        init_containers, containers, extra = _model_containers(
            isvc_name,
            revision,
            predictor,
            predictor.model,
            auth,
            feedback,
            config,
            logger_parts(predictor.logger, namespace, component),
            component,
        )
        volumes += extra
    else:
        containers = [_custom_container(c, auth_secret, config) for c in predictor.containers or ()]
    if tls is not None:
        bundled = predictor.model is not None
        containers = [with_tls(c, tls, runtime=bundled) for c in containers]
        volumes += tls_volumes(isvc_name, tls)
    if auth_secret is not None:
        volumes.append(
            {
                "name": "auth",
                "secret": {
                    "secretName": auth_secret,
                    "items": [{"key": AUTH_KEY, "path": AUTH_KEY}],
                    "defaultMode": 0o440,
                },
            }
        )
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "terminationGracePeriodSeconds": termination_grace_seconds(predictor),
    }
    if predictor.service_account_name:
        spec["serviceAccountName"] = predictor.service_account_name
    if init_containers:
        spec["initContainers"] = init_containers
    spec["containers"] = containers
    spec["volumes"] = volumes
    if predictor.node_selector:
        spec["nodeSelector"] = dict(predictor.node_selector)
    if predictor.tolerations:
        spec["tolerations"] = [t.to_dict() for t in predictor.tolerations]
    spread = topology_spread(predictor, selector)
    if spread:
        spec["topologySpreadConstraints"] = spread
    return {
        "metadata": {
            "labels": pod_labels,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(METRICS_PORT),
                "prometheus.io/path": contract.METRICS_PATH,
            },
        },
        "spec": spec,
    }
