"""The contract between the operator, ``kubeserve local`` and the runtime: names both spell alike.

Limits: names and fixed values only, standard library only. Behaviour stays with each
side (the runtime's settings and parsers, the operator's builders);
tests/unit/test_contract.py proves the two sides agree: every environment variable and
flag the operator renders for the runtime and storage-initializer containers is one the
runtime reads, and the operator's inputSchema model accepts a schema exactly when the
runtime's does (within the CRD's size limits).

Why in the runtime package: the runtime image has neither kopf nor the Kubernetes
client and must never import the operator (``kubeserve``), while the operator image
installs the whole distribution, runtime package included. So the dependency can only
point one way, operator -> ``kubeserve_runtime.contract``; the module imports nothing
else from the runtime so the operator pays nothing for it (no numpy, no servers).

What it fixes:

- the API's identity (group, version, kind, plural);
- the labels and annotations on the operator's children (``kubeserve local`` reads the
  rendered children by the same labels);
- the serving container's ports, paths and health endpoints;
- the ``KUBESERVE_*`` environment variables the operator renders and the runtime reads
  (:func:`env_name` is the runtime's own mapping: a setting ``http_port`` is read from
  ``KUBESERVE_HTTP_PORT``), and the runtime's command line (``serve``, ``download``);
- the feedback names: the key Secret's mount, the token's header and V2 parameter, the
  feedback route and gRPC method;
- the Open Inference Protocol datatypes an inputSchema may name.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# ------------------------------------------------------------------ the API's identity

GROUP: Final = "serving.kubeserve.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "InferenceService"
PLURAL: Final = "inferenceservices"

# ------------------------------------------------------------------ labels, annotations

LABEL_ISVC: Final = f"{GROUP}/inferenceservice"
"""On every child: the owning InferenceService's name (the operator watches by it)."""
LABEL_VARIANT: Final = f"{GROUP}/variant"
"""On workloads: the component (``predictor`` or a variant's name)."""
LABEL_REVISION: Final = f"{GROUP}/revision"
"""On workloads: the revision (hash of the predictor spec)."""
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
"""The recommended component label: the component, or ``router`` on route objects."""
ANNOTATION_APPLIED_HASH: Final = f"{GROUP}/applied-hash"
"""On every child: the hash of what the operator last applied (drift detection)."""

# ------------------------------------------------------------------ the serving container

HTTP_PORT: Final = 8080
GRPC_PORT: Final = 8081
METRICS_PORT: Final = 8082
MODEL_DIR: Final = "/mnt/models"
"""Where the storage initializer puts the model and the runtime loads it from."""
PVC_ROOT: Final = "/mnt/pvc"
"""Where ``pvc://<claim>`` sources are mounted (``/mnt/pvc/<claim>``)."""
LIVE_PATH: Final = "/v2/health/live"
READY_PATH: Final = "/v2/health/ready"
METRICS_PATH: Final = "/metrics"

RUNTIME_COMMAND: Final = "kubeserve-runtime"
SERVE: Final = "serve"
"""Subcommand of the serving container: settings come from the environment below."""
DOWNLOAD: Final = "download"
"""Subcommand of the storage initializer: ``download URI DIR [--link]``."""
LINK_FLAG: Final = "--link"
"""``download`` flag: link file:// and pvc:// sources instead of copying them."""

# ------------------------------------------------------------------ environment

ENV_PREFIX: Final = "KUBESERVE_"


def env_name(setting: str) -> str:
    """The variable a runtime setting is read from: ``http_port`` -> ``KUBESERVE_HTTP_PORT``."""
    return f"{ENV_PREFIX}{setting.upper()}"


# Read by ``kubeserve-runtime serve`` (fields of kubeserve_runtime.settings.RuntimeSettings).
ENV_MODEL_DIR: Final = env_name("model_dir")
ENV_MODEL_NAME: Final = env_name("model_name")
ENV_MODEL_VERSION: Final = env_name("model_version")
ENV_MODEL_FORMAT: Final = env_name("model_format")
ENV_HOST: Final = env_name("host")
ENV_HTTP_PORT: Final = env_name("http_port")
ENV_GRPC_PORT: Final = env_name("grpc_port")
ENV_METRICS_PORT: Final = env_name("metrics_port")
ENV_MAX_BATCH_SIZE: Final = env_name("max_batch_size")
ENV_MAX_LATENCY_MS: Final = env_name("max_latency_ms")
ENV_INPUT_SCHEMA: Final = env_name("input_schema")
ENV_AUTH_TOKEN_FILE: Final = env_name("auth_token_file")
ENV_AUTH_MODE: Final = env_name("auth_mode")
ENV_AUTH_AUDIENCE: Final = env_name("auth_audience")
ENV_AUTH_ISSUER: Final = env_name("auth_issuer")
ENV_AUTH_DISCOVERY_URL: Final = env_name("auth_discovery_url")
ENV_AUTH_JWKS_URL: Final = env_name("auth_jwks_url")
ENV_AUTH_CA_FILE: Final = env_name("auth_ca_file")
ENV_AUTH_FETCH_TOKEN_FILE: Final = env_name("auth_fetch_token_file")
ENV_AUTH_ALLOW: Final = env_name("auth_allow")
ENV_AUTH_REQUIRED_CLAIMS: Final = env_name("auth_required_claims")
ENV_TLS_CERT_FILE: Final = env_name("tls_cert_file")
ENV_TLS_KEY_FILE: Final = env_name("tls_key_file")
ENV_TLS_CLIENT_CA_FILE: Final = env_name("tls_client_ca_file")
ENV_SHUTDOWN_DELAY_SECONDS: Final = env_name("shutdown_delay_seconds")
ENV_DRAIN_TIMEOUT_SECONDS: Final = env_name("drain_timeout_seconds")
ENV_FEEDBACK_KEY_FILE: Final = env_name("feedback_key_file")
ENV_FEEDBACK_TOKEN_TTL_SECONDS: Final = env_name("feedback_token_ttl_seconds")
ENV_FEEDBACK_TASK: Final = env_name("feedback_task")
ENV_NAMESPACE: Final = env_name("namespace")
ENV_COMPONENT: Final = env_name("component")
ENV_PAYLOAD_LOGGER: Final = env_name("payload_logger")

# Read by ``kubeserve-runtime download`` (kubeserve_runtime.storage).
ENV_MAX_MODEL_BYTES: Final = env_name("max_model_bytes")
ENV_STORAGE_SECRET_DIR: Final = env_name("storage_secret_dir")
ENV_PVC_ROOT: Final = env_name("pvc_root")

# ------------------------------------------------------------------ authentication

AuthMode = Literal["tokens", "serviceAccount", "oidc"]
"""``spec.auth.mode`` and ``KUBESERVE_AUTH_MODE``: token file, ServiceAccount JWTs, OIDC JWTs."""
AUTH_MODES: Final[tuple[str, ...]] = get_args(AuthMode)
IN_CLUSTER_API: Final = "https://kubernetes.default.svc"
"""The API server as every pod reaches it (the ``kubernetes`` Service of ``default``)."""
DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
"""kube-apiserver's (and every OIDC issuer's) discovery document."""
SA_JWKS_PATH: Final = "/openid/v1/jwks"
"""kube-apiserver's ServiceAccount token signing keys."""
SA_ALLOW_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/([a-z0-9]([-.a-z0-9]*[a-z0-9])?|[*])$"
"""A serviceAccount-mode allow entry: ``namespace/name`` or ``namespace/*``."""

# ------------------------------------------------------------------ feedback

FEEDBACK_KEY_DIR: Final = "/var/run/secrets/kubeserve/feedback"
"""Where the operator mounts the InferenceService's feedback Secret (read-only)."""
FEEDBACK_SECRET_KEY: Final = "key"
"""The default key of that Secret holding the HMAC key(s), one per line."""
FEEDBACK_HEADER: Final = "kubeserve-feedback-token"
"""Response header (REST) and initial metadata key (gRPC) carrying the feedback token."""
FEEDBACK_PARAMETER: Final = "feedback_token"
"""The V2 response parameter (REST JSON/binary and gRPC) carrying the same token."""
FEEDBACK_PATH: Final = "/v2/models/{name}/feedback"
"""REST route taking ``{token, truth}`` / ``{token, reward}`` items."""
FEEDBACK_GRPC_METHOD: Final = "/kubeserve.feedback.v1.FeedbackService/Submit"
"""gRPC extension method: request and response are the REST route's JSON, as bytes."""

# ------------------------------------------------------------------ experiments

DEFAULT_COMPONENT: Final = "predictor"
"""The main predictor's component (the runtime's default ``component`` setting)."""
METRIC_LABEL_VARIANT: Final = "variant"
"""Request and feedback series label: the component that served (``predictor`` or a
variant's name), so arms with equal revisions (an A/A test) stay apart."""
METRIC_LABEL_ROUTED: Final = "routed"
"""Request series label: how the route chose this replica (:data:`ROUTED_VALUES`)."""
ROUTED_HEADER: Final = "kubeserve-routed"
"""Request header the Gateway API route sets on header-matched rules (value
:data:`ROUTED_BY_HEADER`); a request carrying it was not randomized."""
ROUTED_BY_HEADER: Final = "header"
ROUTED_BY_WEIGHT: Final = "weight"
ROUTED_VALUES: Final = (ROUTED_BY_HEADER, ROUTED_BY_WEIGHT)
"""The only values of :data:`METRIC_LABEL_ROUTED` (bounded cardinality)."""

# ------------------------------------------------------------------ datatypes

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "BF16",
    "FP32",
    "FP64",
    "BYTES",
]
"""The Open Inference Protocol tensor datatypes (the CRD's inputSchema enum, in order)."""
DATATYPES: Final[tuple[str, ...]] = get_args(Datatype)
