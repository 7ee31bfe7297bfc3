"""The ``serving.kubeserve.io/v1alpha1`` InferenceService: spec and status models.

These pydantic models are the single source of truth for the API: the CRD's OpenAPI
schema (``kubeserve crds``), the API reference (docs/api.md), ``kubeserve render`` and
the operator all derive from them. Field descriptions become CRD descriptions, so every
field has one. Defaults live here, not in the CRD, so the API server never writes
fields the user did not (GitOps tools see exactly what was committed); the operator
applies them when it parses an object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from itertools import pairwise
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from kubeserve.api.base import ApiModel, Rule
from kubeserve_runtime import contract

SINGULAR = "inferenceservice"
SHORT_NAMES = ("isvc",)

MAIN_COMPONENT = contract.DEFAULT_COMPONENT
"""Component name of the main predictor (variants may not use it)."""
MAX_NAME_LENGTH = 38
"""Longest InferenceService name: ``<name>-<variant>-<revision>`` must fit a DNS label."""
MAX_VARIANT_NAME_LENGTH = 15
MAX_VARIANTS = 8
MAX_STEPS = 20

DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
"""A DNS-1123 subdomain (object names such as a PersistentVolumeClaim's), unanchored.

Written with ``[.]`` rather than ``\\.`` so it needs no escaping inside CEL strings."""
MAX_SUBDOMAIN_LENGTH = 253
PVC_URI_PATTERNS = (
    f"^pvc://[-a-z0-9.]{{1,{MAX_SUBDOMAIN_LENGTH}}}(/.*)?$",
    f"^pvc://{DNS_SUBDOMAIN}(/.*)?$",
)
"""A pvc:// URI must match both: the claim is 1..253 characters and a DNS-1123 subdomain.

Two patterns because RE2 (CEL) has no look-ahead to bound the length of the structured
one; the first only counts the characters before the first ``/``."""
HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
"""An HTTP header name (RFC 7230 token), as Gateway API's HTTPHeaderName allows.

It contains ``'``, so CEL embeds it in a double-quoted string; no ``"`` or ``\\`` in it."""
MAX_HEADER_NAME_LENGTH = 256
SIZE_SUFFIXES: dict[str, int] = {
    **{s: 1024 ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti"))},
    **{s: 1000 ** (i + 1) for i, s in enumerate(("k", "M", "G", "T"))},
}
SIZE_PATTERN = rf"^([1-9][0-9]{{0,5}})({'|'.join(SIZE_SUFFIXES)})?$"
"""A positive whole number (up to 6 digits) with an optional suffix: 10Gi, 500Mi, 20G.

Deliberately narrower than a Kubernetes quantity (no fractions, exponents, milli, P or
E, so at most 999999Ti and never beyond int64), so it is a valid quantity for
``emptyDir.sizeLimit`` and converts to bytes exactly."""
LABEL_KEY_PATTERN = f"^({DNS_SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"
"""A label key such as ``topology.kubernetes.io/zone`` (optional DNS prefix, name <= 63)."""
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
STORAGE_URI_PATTERN = r"^(s3|gs|https?|pvc|file)://.+$"

ModelFormatName = Literal["onnx", "sklearn", "xgboost", "lightgbm", "pytorch", "custom"]
ProtocolVersion = Literal["v1", "v2"]
ScaleMetric = Literal["cpu", "memory", "concurrency", "rps"]
DataType = contract.Datatype

DEFAULT_STORAGE_SIZE_LIMIT = "10Gi"
"""storageSizeLimit when unset: room for typical models without filling a node's disk."""
DEFAULT_SHUTDOWN_DELAY_SECONDS = 5
"""shutdownDelaySeconds when unset: time for endpoints and gateways to stop routing."""
MAX_SHUTDOWN_DELAY_SECONDS = 300
DEFAULT_SPREAD_KEYS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
"""Topology keys the replicas spread over when topologySpreadConstraints is unset."""

DEFAULT_SCALE_TARGETS: dict[str, int] = {"cpu": 80, "memory": 80, "concurrency": 8, "rps": 50}
"""scaleTarget when unset: utilisation % for cpu/memory, per-pod value otherwise."""

Quantity = Annotated[
    int | Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=64)],
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes resource quantity such as ``500m``, ``2Gi`` or ``4``."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=253)]
LongString = Annotated[str, StringConstraints(max_length=4096)]
ShortString = Annotated[str, StringConstraints(max_length=253)]
RolloutStateObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""Free-form object owned by the rollout logic (kubeserve.rollout.state)."""
Timestamp = Annotated[str, Field(max_length=64, json_schema_extra={"format": "date-time"})]


def size_bytes(size: str) -> int:
    """The bytes of a size matching SIZE_PATTERN, e.g. ``10Gi`` -> 10737418240."""
    match = re.fullmatch(SIZE_PATTERN, size)
    if match is None:
        raise ValueError(f"not a size such as 10Gi: {size!r}")
    return int(match[1]) * SIZE_SUFFIXES.get(match[2] or "", 1)


def canonical_size(size: str) -> str:
    """The API server's spelling of a size: the largest suffix of its kind, e.g. 1024Mi -> 1Gi.

    Builders write sizes this way so the stored object equals the built one (no drift).
    """
    total = size_bytes(size)
    binary = size.endswith("i")
    for suffix, factor in reversed(SIZE_SUFFIXES.items()):
        if suffix.endswith("i") == binary and total % factor == 0:
            return f"{total // factor}{suffix}"
    return str(total)


# --------------------------------------------------------------------------- shared types


class LocalObjectReference(ApiModel):
    """A reference to an object in the InferenceService's namespace."""

    name: Name = Field(description="Name of the referenced object.")


class KeySelector(ApiModel):
    """Selects one key of a Secret or ConfigMap."""

    name: Name = Field(description="Name of the Secret or ConfigMap.")
    key: ShortString = Field(description="The key whose value is used.")
    optional: bool | None = Field(
        default=None, description="Whether a missing object or key is tolerated."
    )


class FieldSelector(ApiModel):
    """Selects a field of the pod (Downward API)."""

    field_path: ShortString = Field(description="Path of the field, e.g. `metadata.name`.")
    api_version: ShortString | None = Field(
        default=None, description="Version of the schema the path is written in; default v1."
    )


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef)]"
            ".filter(x, x).size() == 1",
            message="valueFrom must set exactly one of secretKeyRef, configMapKeyRef, fieldRef",
            check=lambda s: [s.secret_key_ref, s.config_map_key_ref, s.field_ref].count(None) == 2,
        ),
    )

    secret_key_ref: KeySelector | None = Field(default=None, description="A key of a Secret.")
    config_map_key_ref: KeySelector | None = Field(
        default=None, description="A key of a ConfigMap."
    )
    field_ref: FieldSelector | None = Field(default=None, description="A field of the pod.")


class EnvVar(ApiModel):
    """An environment variable of the serving container."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!(has(self.value) && has(self.valueFrom))",
            message="an environment variable sets value or valueFrom, not both",
            check=lambda s: s.value is None or s.value_from is None,
        ),
    )

    name: Annotated[str, StringConstraints(min_length=1, max_length=253)] = Field(
        description="Name of the variable."
    )
    value: LongString | None = Field(default=None, description="Literal value.")
    value_from: EnvVarSource | None = Field(
        default=None, description="Take the value from a Secret, ConfigMap or pod field."
    )


class ResourceRequirements(ApiModel):
    """Compute resources of a container (Kubernetes quantities)."""

    requests: dict[str, Quantity] | None = Field(
        default=None,
        description="Minimum resources the scheduler reserves, e.g. `{cpu: 500m, memory: 512Mi}`. "
        "Defaults come from the operator's configuration. cpu/memory requests are required "
        "for cpu/memory autoscaling.",
    )
    limits: dict[str, Quantity] | None = Field(
        default=None, description="Maximum resources the container may use."
    )


class Toleration(ApiModel):
    """A toleration of the predictor pods (as in the Kubernetes Pod spec)."""

    key: ShortString | None = Field(
        default=None, description="Taint key; empty with operator Exists matches all."
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="`Equal` (default) or `Exists`."
    )
    value: ShortString | None = Field(default=None, description="Taint value for `Equal`.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated; unset = forever."
    )


# --------------------------------------------------------------------------- predictor


class ModelFormat(ApiModel):
    """The model's format, which picks the runtime's loader."""

    name: ModelFormatName = Field(
        description="Model format: onnx, sklearn, xgboost, lightgbm, pytorch (TorchScript) "
        "or custom (a Python handler with load/preprocess/predict/postprocess)."
    )
    version: ShortString | None = Field(
        default=None, description="Format version, informational (e.g. the opset of ONNX)."
    )


def _pvc_uri_ok(uri: str) -> bool:
    """Python twin of the pvc:// CEL rule."""
    return not uri.startswith("pvc://") or all(re.fullmatch(p, uri) for p in PVC_URI_PATTERNS)


class Model(ApiModel):
    """A model served by the bundled kubeserve runtime."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!self.storageUri.startsWith('pvc://') || ("
            + " && ".join(f"self.storageUri.matches('{p}')" for p in PVC_URI_PATTERNS)
            + ")",
            message="a pvc:// storageUri is pvc://<claim>/<path> where <claim> is the name of "
            f"a PersistentVolumeClaim: at most {MAX_SUBDOMAIN_LENGTH} lowercase letters, "
            "digits, '-' and '.', starting and ending with a letter or digit",
            check=lambda s: _pvc_uri_ok(s.storage_uri),
        ),
    )

    model_format: ModelFormat = Field(description="Format of the model files.")
    storage_uri: Annotated[str, StringConstraints(pattern=STORAGE_URI_PATTERN, max_length=2048)] = (
        Field(
            description="Where the model files are: s3://, gs://, https://, pvc://<claim>/<path> "
            "or file:// (a path inside the image). Downloaded by an init container into "
            "/mnt/models; pvc:// is mounted read-only instead."
        )
    )
    storage_secret_ref: LocalObjectReference | None = Field(
        default=None,
        description="Secret with storage credentials (e.g. AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL); given to the download init container "
        "as environment variables and as files.",
    )
    protocol_version: ProtocolVersion = Field(
        default="v2",
        description="Inference protocol the clients speak: v1 (KServe V1 / TF-Serving JSON) or "
        "v2 (Open Inference Protocol, REST and gRPC). Both are served; this picks the "
        "protocol the operator probes and advertises.",
    )
    runtime_version: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=128)]
        | None
    ) = Field(
        default=None,
        description="Tag of the runtime image to use instead of the operator's default.",
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Compute resources of the runtime container."
    )
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=64,
        description="Extra environment variables of the runtime container.",
    )
    storage_size_limit: Annotated[str, StringConstraints(pattern=SIZE_PATTERN, max_length=32)] = (
        Field(
            default=DEFAULT_STORAGE_SIZE_LIMIT,
            description="Most space the model may take in the pod: the size limit of the "
            "/mnt/models volume (an emptyDir; the kubelet evicts a pod that exceeds it), and "
            "the download init container refuses a model (or archive) larger than this. "
            "Whole bytes with an optional suffix, e.g. 500Mi or 20Gi; default "
            f"{DEFAULT_STORAGE_SIZE_LIMIT}.",
        )
    )


class CustomContainer(ApiModel):
    """A custom serving container that replaces the bundled runtime.

    It must serve the Open Inference Protocol health endpoints on port 8080
    (`/v2/health/ready`, `/v2/health/live`), like the bundled runtime.
    """

    name: Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)] = Field(
        default="kserve-container", description="Container name."
    )
    image: Annotated[str, StringConstraints(min_length=1, max_length=512)] = Field(
        description="Container image."
    )
    command: list[LongString] | None = Field(
        default=None, max_length=64, description="Entrypoint; the image's when unset."
    )
    args: list[LongString] | None = Field(
        default=None, max_length=256, description="Arguments; the image's when unset."
    )
    env: list[EnvVar] | None = Field(
        default=None, max_length=64, description="Environment variables."
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Compute resources of the container."
    )


class Batcher(ApiModel):
    """Adaptive batching: requests are grouped until the batch is full or time is up."""

    max_batch_size: int = Field(
        default=32, ge=1, le=4096, description="Largest batch handed to the model."
    )
    max_latency_ms: int = Field(
        default=5,
        ge=1,
        le=60000,
        description="Longest time the first request of a batch waits for more, in ms.",
    )


class InputSpec(ApiModel):
    """Expected shape, type and range of one input tensor."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.min) || !has(self.max) || self.min <= self.max",
            message="input min must be less than or equal to max",
            check=lambda s: s.min is None or s.max is None or s.min <= s.max,
        ),
    )

    name: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Input tensor name."
    )
    datatype: DataType = Field(description="Open Inference Protocol datatype, e.g. FP32.")
    shape: list[Annotated[int, Field(ge=-1)]] | None = Field(
        default=None,
        max_length=8,
        description="Shape; -1 marks a variable dimension (usually the batch). Unset = any.",
    )
    min: float | None = Field(
        default=None, description="Smallest allowed value; smaller values get a 400."
    )
    max: float | None = Field(
        default=None, description="Largest allowed value; larger values get a 400."
    )
    allow_nan: bool = Field(
        default=False,
        alias="allowNaN",
        description="Whether NaN values are accepted (refused with a 400 by default).",
    )


class InputSchema(ApiModel):
    """Inputs the model accepts; requests that violate it get a 400 naming the problem."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.inputs.all(i, self.inputs.exists_one(j, j.name == i.name))",
            message="inputSchema.inputs names must be unique",
            check=lambda s: len({i.name for i in s.inputs}) == len(s.inputs),
        ),
    )

    inputs: list[InputSpec] = Field(
        min_length=1, max_length=64, description="One entry per input tensor."
    )


class TopologySpreadConstraint(ApiModel):
    """Spread of each revision's replicas over one kind of domain (selector: its pods)."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.minDomains) || "
            "(has(self.whenUnsatisfiable) && self.whenUnsatisfiable == 'DoNotSchedule')",
            message="minDomains needs whenUnsatisfiable: DoNotSchedule",
            check=lambda s: s.min_domains is None or s.when_unsatisfiable == "DoNotSchedule",
        ),
    )

    topology_key: Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN, max_length=316)] = (
        Field(
            description="Node label whose values are the domains, e.g. "
            "`kubernetes.io/hostname` or `topology.kubernetes.io/zone`."
        )
    )
    max_skew: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="Largest allowed difference in replicas between two domains; default 1.",
    )
    when_unsatisfiable: Literal["ScheduleAnyway", "DoNotSchedule"] = Field(
        default="ScheduleAnyway",
        description="ScheduleAnyway (default: prefer spreading, never leave a pod pending) or "
        "DoNotSchedule (keep pods pending rather than exceed maxSkew).",
    )
    min_domains: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="With DoNotSchedule: the number of domains to assume at least.",
    )


# --------------------------------------------------------------------------- payload logger

LoggerMode = Literal["all", "request", "response"]
SseAlgorithm = Literal["AES256", "aws:kms", "aws:kms:dsse"]
MAX_LOG_SINKS = 8
LOG_SINK_KINDS = ("http", "s3", "stdout")


class HttpLogSink(ApiModel):
    """CloudEvents over HTTP, header-compatible with KServe's payload logger."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://.+$", max_length=2048)] = Field(
        description="Receiver URL (http:// or https://; https uses the image's trust store)."
    )
    batch_size: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="Events per POST. 1 (default): CloudEvents binary mode, one event per "
        "POST with `ce-*` headers, as KServe sends them; more: CloudEvents batch mode "
        "(`application/cloudevents-batch+json`), far cheaper per event.",
    )
    headers_secret_ref: LocalObjectReference | None = Field(
        default=None,
        description="Secret whose keys are header names and values the header values, "
        "sent with every POST (e.g. an API key); mounted into the runtime as files.",
    )


class S3LogSink(ApiModel):
    """JSON Lines objects on S3 or an S3-compatible store."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.kmsKeyId) || "
            "(has(self.serverSideEncryption) && self.serverSideEncryption.startsWith('aws:kms'))",
            message="kmsKeyId needs serverSideEncryption aws:kms or aws:kms:dsse",
            check=lambda s: (
                s.kms_key_id is None or (s.server_side_encryption or "").startswith("aws:kms")
            ),
        ),
    )

    uri: Annotated[str, StringConstraints(pattern=r"^s3://[^/]+(/.*)?$", max_length=1024)] = Field(
        description="s3://bucket/prefix; objects go to "
        "<prefix>/<namespace>/<name>/<revision>/<YYYY-MM-DD>/. Credentials and endpoint "
        "come from the runtime container's environment (AWS_* variables, e.g. from "
        "model.env with secretKeyRef, or the pod's cloud identity)."
    )
    max_events: int = Field(
        default=1000, ge=1, le=100000, description="Most events in one object; default 1000."
    )
    flush_interval_seconds: int = Field(
        default=10,
        ge=1,
        le=3600,
        description="Longest an event waits before its object is written; default 10.",
    )
    server_side_encryption: SseAlgorithm | None = Field(
        default=None,
        description="Passed to PutObject as ServerSideEncryption: AES256, aws:kms or "
        "aws:kms:dsse; unset = the bucket's default.",
    )
    kms_key_id: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = Field(
        default=None, description="Passed to PutObject as SSEKMSKeyId (with aws:kms)."
    )


class StdoutLogSink(ApiModel):
    """JSON lines on the runtime's stdout, for the cluster's log pipeline."""


class LogSink(ApiModel):
    """Where payload events go: exactly one of http, s3 or stdout."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=" + ".join(f"(has(self.{k}) ? 1 : 0)" for k in LOG_SINK_KINDS) + " == 1",
            message="each logger sink sets exactly one of http, s3 or stdout",
            check=lambda s: sum(getattr(s, k) is not None for k in LOG_SINK_KINDS) == 1,
        ),
    )

    http: HttpLogSink | None = Field(default=None, description="CloudEvents over HTTP.")
    s3: S3LogSink | None = Field(default=None, description="JSON Lines objects on S3.")
    stdout: StdoutLogSink | None = Field(default=None, description="JSON lines on stdout.")


class Logger(ApiModel):
    """Payload logging: requests and responses (inputs, outputs, timestamps, revision,
    variant, request id) as CloudEvents, sent by the runtime itself (no sidecar)."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.sinks) && size(self.sinks) > 0",
            message="logger.sinks needs at least one sink: http, s3 or stdout",
            check=lambda s: bool(s.sinks),
        ),
    )

    mode: LoggerMode = Field(
        default="all", description="What to log: all (default), request or response."
    )
    sample_rate: float = Field(
        default=1.0,
        # integer bounds: kustomize rewrites 1.0 as 1, so the kustomize bundle's CRD and
        # crds/ would otherwise differ in type
        ge=0,
        le=1,
        description="Share of predictions logged, 0 to 1; default 1 (every one).",
    )
    redact: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] | None = Field(
        default=None,
        max_length=64,
        description="Input and output tensor names whose data is replaced by `REDACTED` "
        "(name, datatype and shape are kept).",
    )
    sinks: list[LogSink] | None = Field(
        default=None,
        max_length=MAX_LOG_SINKS,
        description="Where events go (at least one). Delivery never slows inference: "
        "each sink has a bounded queue; when a sink is down its events are dropped and "
        "counted in kubeserve_payload_events_dropped_total.",
    )


def _spread_key(c: TopologySpreadConstraint) -> tuple[str, str]:
    """What Kubernetes requires unique among a pod's spread constraints."""
    return c.topology_key, c.when_unsatisfiable


class Predictor(ApiModel):
    """What serves the model, how many replicas, and how it scales."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.model) != has(self.containers)",
            message="set exactly one of model (with a storageUri) or containers "
            "(a custom serving container)",
            check=lambda s: (s.model is None) != (s.containers is None),
        ),
        Rule(
            cel="!has(self.logger) || has(self.model)",
            message="logger needs model (the bundled runtime logs payloads); a custom "
            "container logs its own",
            check=lambda s: s.logger is None or s.model is not None,
        ),
        Rule(
            cel="!has(self.maxReplicas) || "
            "(has(self.minReplicas) ? self.minReplicas : 1) <= self.maxReplicas",
            message="minReplicas must be less than or equal to maxReplicas",
            check=lambda s: s.max_replicas is None or s.min_replicas <= s.max_replicas,
        ),
        Rule(
            cel="!has(self.topologySpreadConstraints) || self.topologySpreadConstraints.all(c, "
            "self.topologySpreadConstraints.exists_one(d, d.topologyKey == c.topologyKey && "
            "(has(d.whenUnsatisfiable) ? d.whenUnsatisfiable : 'ScheduleAnyway') == "
            "(has(c.whenUnsatisfiable) ? c.whenUnsatisfiable : 'ScheduleAnyway')))",
            message="topologySpreadConstraints may name a topologyKey once per whenUnsatisfiable",
            check=lambda s: (
                s.topology_spread_constraints is None
                or len(set(map(_spread_key, s.topology_spread_constraints)))
                == len(s.topology_spread_constraints)
            ),
        ),
    )

    model: Model | None = Field(
        default=None, description="The model, served by the bundled kubeserve runtime."
    )
    containers: list[CustomContainer] | None = Field(
        default=None,
        min_length=1,
        max_length=1,
        description="A custom serving container instead of `model` (exactly one).",
    )
    service_account_name: Annotated[str, StringConstraints(min_length=1, max_length=253)] | None = (
        Field(
            default=None, description="ServiceAccount of the predictor pods; the namespace default."
        )
    )
    min_replicas: int = Field(
        default=1, ge=1, le=1000, description="Fewest replicas; a PDB keeps one up when > 1."
    )
    max_replicas: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Most replicas; an autoscaler is created when greater than minReplicas. "
        "Unset means minReplicas (no autoscaling).",
    )
    scale_metric: ScaleMetric = Field(
        default="cpu",
        description="Autoscaling metric: cpu or memory (utilisation of requests, %), "
        "concurrency (in-flight requests per pod) or rps (requests per second per pod); "
        "concurrency and rps need a Prometheus adapter serving the pods metrics "
        "kubeserve_inflight_requests and kubeserve_requests_per_second.",
    )
    scale_target: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="Target value of scaleMetric per pod. Defaults: cpu 80, memory 80, "
        "concurrency 8, rps 50.",
    )
    batcher: Batcher | None = Field(
        default=None, description="Adaptive batching; unset = one request per model call."
    )
    input_schema: InputSchema | None = Field(
        default=None, description="Validate request inputs before they reach the model."
    )
    node_selector: dict[str, ShortString] | None = Field(
        default=None, description="Node labels the predictor pods must be scheduled on."
    )
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=32, description="Taints the predictor pods tolerate."
    )
    topology_spread_constraints: list[TopologySpreadConstraint] | None = Field(
        default=None,
        max_length=8,
        description="How each revision's replicas spread over nodes and zones. Unset: over "
        "nodes (`kubernetes.io/hostname`) and zones (`topology.kubernetes.io/zone`), maxSkew "
        "1, ScheduleAnyway, so one node or zone failure does not take every replica and a "
        "one-node cluster still schedules them all. `[]` turns spreading off (the "
        "scheduler's cluster defaults apply).",
    )
    shutdown_delay_seconds: int = Field(
        default=DEFAULT_SHUTDOWN_DELAY_SECONDS,
        ge=0,
        le=MAX_SHUTDOWN_DELAY_SECONDS,
        description="Seconds a stopping replica keeps serving (reporting not-ready) before it "
        "closes its listeners, so Services, gateways and load balancers stop sending it "
        "requests first; then in-flight requests drain. Raise it for load balancers that "
        "deregister slowly. The pod's termination grace period covers delay and drain. "
        f"Default {DEFAULT_SHUTDOWN_DELAY_SECONDS}; the bundled runtime only (a custom "
        "container handles SIGTERM itself).",
    )
    logger: Logger | None = Field(
        default=None,
        description="Payload logging by the bundled runtime (needs `model`). A variant "
        "without its own logger inherits the main predictor's.",
    )

    @property
    def effective_max_replicas(self) -> int:
        """maxReplicas, defaulting to minReplicas."""
        return self.max_replicas if self.max_replicas is not None else self.min_replicas

    @property
    def effective_scale_target(self) -> int:
        """scaleTarget, defaulting per metric."""
        if self.scale_target is not None:
            return self.scale_target
        return DEFAULT_SCALE_TARGETS[self.scale_metric]


# --------------------------------------------------------------------------- rollout


class Analysis(ApiModel):
    """Checks run on the canary at every step of a progressive rollout."""

    max_error_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Highest share of failed (5xx) canary requests, 0..1.",
    )
    max_latency_p99_ms: float | None = Field(
        default=None, gt=0, le=3600000, description="Highest p99 canary latency in ms."
    )
    min_requests: int = Field(
        default=10,
        ge=0,
        description="Requests the canary must have served in an interval before it is "
        "judged; fewer means the step waits.",
    )
    failure_threshold: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Failed checks (not necessarily consecutive) that roll the canary back.",
    )
    query: LongString | None = Field(
        default=None,
        description="Custom PromQL check, run only when the operator has a Prometheus URL. "
        "The placeholders {namespace}, {name} and {revision} are replaced; the check "
        "fails when the single value it returns is greater than queryMax.",
    )
    query_max: float = Field(
        default=0, description="Highest value the custom query may return and pass."
    )
    min_accuracy: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Lowest canary accuracy (0..1) from ground-truth feedback "
        "(spec.feedback) over the interval. Needs the operator's Prometheus URL.",
    )
    max_quality_drop: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Largest accuracy drop of the canary below the stable revision over the "
        "interval (0.02 = two points). Needs the operator's Prometheus URL.",
    )
    min_feedback: int = Field(
        default=20,
        ge=1,
        description="Scored predictions the canary (and, for maxQualityDrop, the stable "
        "revision) must have in an interval before quality is judged; fewer means the "
        "step waits.",
    )


class Rollout(ApiModel):
    """How a new revision of the predictor replaces the stable one.

    Without a rollout block a new revision replaces the old one at once. With
    canaryTrafficPercent it gets that share until the field is removed or set to 100
    (manual canary); with steps it advances every interval while analysis passes.
    """

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!(has(self.canaryTrafficPercent) && has(self.steps))",
            message="set canaryTrafficPercent (manual canary) or steps (progressive canary), "
            "not both",
            check=lambda s: s.canary_traffic_percent is None or s.steps is None,
        ),
        Rule(
            cel="!has(self.steps) || (self.steps.isSorted() && "
            "self.steps.all(x, self.steps.exists_one(y, y == x)))",
            message="rollout.steps must be strictly increasing, e.g. [10, 25, 50]",
            check=lambda s: s.steps is None or all(a < b for a, b in pairwise(s.steps)),
        ),
    )

    canary_traffic_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Manual canary: percent of traffic for the newest revision; remove the "
        "field or set 100 to promote it.",
    )
    steps: list[Annotated[int, Field(ge=1, le=99)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_STEPS,
        description="Progressive canary: the canary's traffic percent at each step, strictly "
        "increasing within 1..99; after the last step the canary is promoted.",
    )
    interval: Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)] = Field(
        default="60s", description="Time between steps, e.g. 30s, 5m, 1h30m."
    )
    analysis: Analysis | None = Field(
        default=None,
        description="Checks each step must pass; unset = the defaults of every check.",
    )
    history_limit: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Revisions kept in status.revisions.history; the operator's default "
        "when unset.",
    )


# --------------------------------------------------------------------------- A/B, mirror, auth


def _lower_ascii(text: str) -> str:
    """CEL's ``lowerAscii()``: only A-Z change."""
    return "".join(c.lower() if c.isascii() else c for c in text)


def _header_name_ok(name: str) -> bool:
    """Python twin of the header-name CEL rule."""
    return (
        len(name) <= MAX_HEADER_NAME_LENGTH and re.fullmatch(HEADER_NAME_PATTERN, name) is not None
    )


class VariantMatch(ApiModel):
    """Requests that match go to this variant, whatever its weight."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        # Header names are map keys, which a structural schema cannot constrain (no
        # propertyNames), so the Gateway API's HTTPHeaderName rule is a CEL rule here.
        Rule(
            cel=f"self.headers.all(h, size(h) <= {MAX_HEADER_NAME_LENGTH} && "
            f'h.matches("{HEADER_NAME_PATTERN}"))',
            message="match.headers names must be HTTP header names: 1 to "
            f"{MAX_HEADER_NAME_LENGTH} letters, digits or !#$%&'*+-.^_`|~ "
            "(no spaces, colons or line breaks)",
            check=lambda s: all(_header_name_ok(h) for h in s.headers),
        ),
        Rule(
            cel="self.headers.all(h, self.headers.exists_one(k, k.lowerAscii() == h.lowerAscii()))",
            message="match.headers names must be unique ignoring case (HTTP header names are "
            "case-insensitive)",
            check=lambda s: len({_lower_ascii(h) for h in s.headers}) == len(s.headers),
        ),
    )

    headers: dict[str, ShortString] = Field(
        min_length=1,
        max_length=8,
        description="HTTP headers that must all be present with exactly these values.",
    )


class Variant(ApiModel):
    """A named A/B variant: its own predictor, a traffic weight and header matches."""

    name: Annotated[
        str, StringConstraints(pattern=DNS_LABEL, max_length=MAX_VARIANT_NAME_LENGTH)
    ] = Field(description="Variant name (a DNS label, not `predictor`).")
    weight: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Percent of unmatched traffic; the main predictor gets the rest.",
    )
    match: VariantMatch | None = Field(
        default=None, description="Header match that routes requests to this variant."
    )
    predictor: Predictor = Field(description="The variant's predictor.")


def variant_predictor(variant: Mapping[str, Any], main: Mapping[str, Any]) -> Mapping[str, Any]:
    """A variant's raw predictor spec with what it inherits from the main predictor.

    Only ``logger`` is inherited, only by a variant served by the bundled runtime
    (``model``), and only when the variant sets none. The result is the
    variant's effective spec: its revision hash and its pods both follow it, so changing
    the main predictor's logger rolls the variants that inherit it.
    """
    if "logger" in variant or "logger" not in main or "model" not in variant:
        return variant
    return {**variant, "logger": main["logger"]}


class Mirror(ApiModel):
    """Shadow traffic: copies of requests go to a variant; its responses are discarded."""

    variant: Annotated[
        str, StringConstraints(pattern=DNS_LABEL, max_length=MAX_VARIANT_NAME_LENGTH)
    ] = Field(description="Name of the variant (in spec.variants) that receives the copies.")
    percent: int = Field(default=100, ge=1, le=100, description="Percent of requests copied.")


AUTH_MODE = "(has(self.mode) ? self.mode : 'tokens')"
"""CEL: the auth mode, with its default (defaults live in the models, not the CRD)."""
MAX_ALLOW = 64
MAX_REQUIRED_CLAIMS = 16
ISSUER_PATTERN = r"^https://[^\s]+$"
SA_ALLOW_CEL = contract.SA_ALLOW_PATTERN
"""The allow-entry pattern inside a single-quoted CEL string (it has no quote or backslash)."""


def _sa_allow_ok(entries: list[str] | None) -> bool:
    """Python twin of the serviceAccount allow-entry rule."""
    return all(re.fullmatch(contract.SA_ALLOW_PATTERN, e) for e in entries or ())


class Auth(ApiModel):
    """Who may call the model, enforced by the runtime on REST and gRPC (health stays open).

    ``tokens``: bearer tokens listed in a Secret. ``serviceAccount``: Kubernetes
    ServiceAccount tokens (from the TokenRequest API, e.g. ``kubectl create token``, or a
    projected volume) for ``audience``, from the ServiceAccounts in ``allow``; the runtime
    verifies them offline with the cluster's OIDC discovery document and JWKS, which it
    reads from the API server with its own pod's ServiceAccount token. ``oidc``: JWTs from
    any OpenID Connect issuer for ``audience``, optionally limited to the subjects in
    ``allow`` and to tokens holding ``requiredClaims``.
    """

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=f"{AUTH_MODE} != 'tokens' || has(self.secretRef)",
            message="auth mode tokens needs secretRef (a Secret whose key `tokens` lists "
            "the accepted tokens)",
            check=lambda s: s.mode != "tokens" or s.secret_ref is not None,
        ),
        Rule(
            cel=f"{AUTH_MODE} == 'tokens' || !has(self.secretRef)",
            message="secretRef is for auth mode tokens only",
            check=lambda s: s.mode == "tokens" or s.secret_ref is None,
        ),
        Rule(
            cel=f"{AUTH_MODE} != 'tokens' || (!has(self.audience) && !has(self.issuer) && "
            "!has(self.allow) && !has(self.requiredClaims))",
            message="audience, issuer, allow and requiredClaims are for auth modes "
            "serviceAccount and oidc",
            check=lambda s: (
                s.mode != "tokens"
                or (s.audience, s.issuer, s.allow, s.required_claims) == (None,) * 4
            ),
        ),
        Rule(
            cel=f"{AUTH_MODE} == 'tokens' || has(self.audience)",
            message="auth modes serviceAccount and oidc need audience: the audience the "
            "callers' tokens are issued for",
            check=lambda s: s.mode == "tokens" or s.audience is not None,
        ),
        Rule(
            cel=f"{AUTH_MODE} != 'serviceAccount' || (has(self.allow) && size(self.allow) > 0)",
            message="auth mode serviceAccount needs allow: namespace/name or namespace/* "
            "entries (without them any ServiceAccount of the cluster could call)",
            check=lambda s: s.mode != "serviceAccount" or bool(s.allow),
        ),
        Rule(
            cel=f"{AUTH_MODE} != 'serviceAccount' || !has(self.allow) || "
            f"self.allow.all(a, a.matches('{SA_ALLOW_CEL}'))",
            message="in auth mode serviceAccount each allow entry is namespace/name or "
            "namespace/* (a ServiceAccount, or every ServiceAccount of a namespace)",
            check=lambda s: s.mode != "serviceAccount" or _sa_allow_ok(s.allow),
        ),
        Rule(
            cel=f"({AUTH_MODE} == 'oidc') == has(self.issuer)",
            message="auth mode oidc needs issuer (the issuer URL), and only oidc takes one "
            "(serviceAccount uses the cluster's issuer)",
            check=lambda s: (s.mode == "oidc") == (s.issuer is not None),
        ),
    )

    mode: contract.AuthMode = Field(
        default="tokens",
        description="tokens (bearer tokens from secretRef), serviceAccount (Kubernetes "
        "ServiceAccount tokens) or oidc (JWTs from an OpenID Connect issuer).",
    )
    secret_ref: LocalObjectReference | None = Field(
        default=None,
        description="tokens mode: Secret whose key `tokens` holds the accepted tokens, one "
        "per line.",
    )
    audience: Annotated[str, StringConstraints(min_length=1, max_length=253)] | None = Field(
        default=None,
        description="serviceAccount and oidc modes: the audience (`aud`) tokens must be "
        "issued for, e.g. `kubectl create token NAME --audience=AUDIENCE`.",
    )
    issuer: (
        Annotated[str, StringConstraints(pattern=ISSUER_PATTERN, max_length=MAX_SUBDOMAIN_LENGTH)]
        | None
    ) = Field(
        default=None,
        description="oidc mode: the issuer URL (https); its discovery document is read "
        "from <issuer>/.well-known/openid-configuration.",
    )
    allow: list[ShortString] | None = Field(
        default=None,
        max_length=MAX_ALLOW,
        description="Allowed callers. serviceAccount mode (required): namespace/name of a "
        "ServiceAccount, or namespace/* for all of a namespace. oidc mode: exact `sub` "
        "values; unset = any subject of the issuer.",
    )
    required_claims: dict[ShortString, ShortString] | None = Field(
        default=None,
        max_length=MAX_REQUIRED_CLAIMS,
        description="serviceAccount and oidc modes: claims every token must hold; a claim "
        "matches when it equals the value or is a list containing it (booleans and numbers "
        'as JSON text, e.g. "true").',
    )

    @property
    def jwt(self) -> bool:
        """Whether tokens are JWTs checked against an issuer (not the token Secret)."""
        return self.mode != "tokens"


class Feedback(ApiModel):
    """Ground-truth feedback: a signed token on every response, scored by any replica.

    Every replica of the InferenceService (all revisions and variants) mounts the same
    Secret, so a token from one is verified by any other. The operator only names the
    Secret in the pod spec; it never reads Secrets.
    """

    secret_ref: LocalObjectReference = Field(
        description="Secret whose key `key` holds the HMAC key(s), one per line, at least 32 "
        "bytes each: the first signs, every one verifies (rotate by listing the new key "
        "first). Create it yourself, e.g. `kubectl create secret generic NAME "
        "--from-literal=key=$(openssl rand -hex 32)`."
    )
    token_ttl_seconds: int = Field(
        default=86400,
        ge=1,
        le=2592000,
        description="How long a token is accepted after the response (default 1 day, at "
        "most 30 days).",
    )
    task: Literal["auto", "classification", "regression"] = Field(
        default="auto",
        description="How truths are scored: classification (confusion matrix) or "
        "regression (absolute and squared errors); auto = regression when the first "
        "output is a floating-point tensor.",
    )


# --------------------------------------------------------------------------- TLS


class IssuerRef(ApiModel):
    """A cert-manager issuer."""

    name: Name = Field(description="Name of the Issuer or ClusterIssuer.")
    kind: Literal["Issuer", "ClusterIssuer"] = Field(
        default="Issuer",
        description="Issuer (in the InferenceService's namespace) or ClusterIssuer.",
    )
    group: ShortString = Field(
        default="cert-manager.io", description="API group of the issuer (external issuers)."
    )


class CertManager(ApiModel):
    """Have cert-manager issue the serving certificate."""

    issuer_ref: IssuerRef = Field(description="The issuer that signs the certificate.")


class ClientCA(ApiModel):
    """Where the CA bundle that client certificates must chain to is kept."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.secretName) != has(self.configMapName)",
            message="clientCA needs exactly one of secretName or configMapName",
            check=lambda s: (s.secret_name is None) != (s.config_map_name is None),
        ),
    )

    secret_name: Name | None = Field(default=None, description="Secret holding the bundle.")
    config_map_name: Name | None = Field(default=None, description="ConfigMap holding the bundle.")
    key: ShortString = Field(default="ca.crt", description="Key of the PEM bundle.")


class GatewayCA(ApiModel):
    """A ConfigMap whose key `ca.crt` holds the CA bundle (Gateway API's requirement)."""

    config_map_name: Name = Field(description="Name of the ConfigMap.")


class Tls(ApiModel):
    """TLS on the predictors' REST and gRPC ports, and optionally client certificates."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.secretName) != has(self.certManager)",
            message="tls needs exactly one of secretName or certManager",
            check=lambda s: (s.secret_name is None) != (s.cert_manager is None),
        ),
    )

    secret_name: Name | None = Field(
        default=None,
        description="A kubernetes.io/tls Secret (keys `tls.crt`, `tls.key`) with the "
        "serving certificate; rotations are picked up without restarts.",
    )
    cert_manager: CertManager | None = Field(
        default=None,
        description="Render a cert-manager Certificate for the Service's DNS names and the "
        "route's host; its Secret is `<name>-tls`.",
    )
    gateway_ca: GatewayCA | None = Field(
        default=None,
        alias="gatewayCA",
        description="The CA the Gateway verifies the pods' certificate with; in gateway "
        "route mode a BackendTLSPolicy is rendered for the route's Services.",
    )
    client_ca: ClientCA | None = Field(
        default=None,
        alias="clientCA",
        description="Require client certificates signed by this CA (mTLS); probes exempt.",
    )


# --------------------------------------------------------------------------- network policy

EgressRule = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""A networking.k8s.io/v1 NetworkPolicyEgressRule, passed through (the API server checks it)."""


class NetworkPolicy(ApiModel):
    """Who may reach the predictor pods (a NetworkPolicy per InferenceService)."""

    enabled: bool | None = Field(
        default=None, description="Render the NetworkPolicy; the operator's default when unset."
    )
    allow_same_namespace: bool = Field(
        default=True,
        description="Pods of the InferenceService's own namespace may reach the REST and "
        "gRPC ports.",
    )
    egress: list[EgressRule] | None = Field(
        default=None,
        max_length=32,
        description="NetworkPolicy egress rules of the predictor pods; unset leaves egress "
        "open. Once set, only these are allowed (remember DNS and the model store).",
    )


# --------------------------------------------------------------------------- spec


# --------------------------------------------------------------------------- experiment

ExperimentMetric = Literal["errorRate", "latencyMean", "accuracy", "reward", "conversion", "custom"]
MEAN_METRICS = ("latencyMean", "reward")
"""Metrics tested as a difference of means; the others are proportions (0..1)."""
LOWER_IS_BETTER = ("errorRate", "latencyMean")
"""Built-in metrics where lower is better (the default `direction`); the others: higher."""
DEFAULT_MAX_DURATION = "168h"
MIN_EXPERIMENT_SAMPLES = 30
"""The fewest `minSamples`: the test's normal approximation needs some data per arm."""


class ExperimentQueries(ApiModel):
    """A custom proportion: two PromQL counts per arm over the experiment so far."""

    numerator: LongString = Field(
        description="PromQL counting the successes of one arm, e.g. "
        '`sum(increase(my_hits_total{namespace="{namespace}", variant="{variant}"}[{range}]))`. '
        "Placeholders {namespace}, {name}, {variant}, {revision} and {range} (the "
        "experiment's age) are replaced; it must stay within the InferenceService's namespace."
    )
    denominator: LongString = Field(
        description="PromQL counting the trials of one arm (same placeholders); the numerator "
        "must never exceed it."
    )


class Experiment(ApiModel):
    """An A/B experiment between the main predictor (arm A) and each weighted variant (B).

    The operator tests the metric with an always-valid sequential test at every rollout
    interval and reports the estimates, intervals, p-value and decision in
    status.experiment. Header-matched traffic is not randomized and is not counted.
    """

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="(self.metric == 'custom') == has(self.custom)",
            message="experiment.custom (numerator and denominator queries) is set exactly "
            "when experiment.metric is custom",
            check=lambda s: (s.metric == "custom") == (s.custom is not None),
        ),
        Rule(
            cel="self.metric != 'custom' || has(self.direction)",
            message="experiment.direction (higher or lower) is required for a custom metric",
            check=lambda s: s.metric != "custom" or s.direction is not None,
        ),
        Rule(
            cel="!has(self.minDetectableEffect) || self.metric in "
            + str(list(MEAN_METRICS)).replace('"', "'")
            + " || self.minDetectableEffect < 1.0",
            message="experiment.minDetectableEffect of a rate metric is a difference of rates "
            "and must be below 1, e.g. 0.02",
            check=lambda s: (
                s.min_detectable_effect is None
                or s.metric in MEAN_METRICS
                or s.min_detectable_effect < 1
            ),
        ),
    )

    metric: ExperimentMetric = Field(
        description="What is compared: errorRate (share of 5xx responses), latencyMean (mean "
        "request latency in seconds), accuracy (share of feedback with the true label), "
        "reward (mean feedback reward), conversion (share of feedback with reward > 0), or "
        "custom (a proportion of two PromQL counts)."
    )
    custom: ExperimentQueries | None = Field(
        default=None, description="The queries of a custom metric."
    )
    direction: Literal["higher", "lower"] | None = Field(
        default=None,
        description="Which values are better; unset = lower for errorRate and latencyMean, "
        "higher otherwise.",
    )
    alpha: float = Field(
        default=0.05,
        ge=0.001,
        le=0.2,
        description="Chance of declaring a winner when the arms do not differ, for all looks "
        "together (divided among the variants when there are several).",
    )
    min_samples: int = Field(
        default=100,
        ge=MIN_EXPERIMENT_SAMPLES,
        le=1_000_000_000,
        description="Samples each arm needs before the experiment can conclude.",
    )
    min_detectable_effect: float | None = Field(
        default=None,
        gt=0,
        description="Smallest absolute difference worth detecting (e.g. 0.02 for two points "
        "of accuracy): enables the samples-still-needed estimate, and an interval inside "
        "plus or minus it concludes NoDifference.",
    )
    max_duration: Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)] = (
        Field(
            default=DEFAULT_MAX_DURATION,
            description="When the experiment stops without a winner: NoDifference, or "
            "Inconclusive when an arm has too few samples (or, with minDetectableEffect, "
            "an effect of that size is not ruled out).",
        )
    )
    on_decision: Literal["report", "promote"] = Field(
        default="report",
        description="report: only status and a condition; promote: the winner serves all "
        "unmatched traffic and the losing variants' weights drop to 0 (the spec is not "
        "changed: copy the winner into spec.predictor to make it permanent).",
    )

    @property
    def higher_is_better(self) -> bool:
        """The direction, with the metric's default."""
        if self.direction is not None:
            return self.direction == "higher"
        return self.metric not in LOWER_IS_BETTER

    @property
    def binary(self) -> bool:
        """Whether the metric is a proportion (0/1 observations) rather than a mean."""
        return self.metric not in MEAN_METRICS


class InferenceServiceSpec(ApiModel):
    """Desired state of an InferenceService."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.variants) || "
            "self.variants.all(v, self.variants.exists_one(w, w.name == v.name))",
            message="variant names must be unique",
            check=lambda s: (
                s.variants is None or len({v.name for v in s.variants}) == len(s.variants)
            ),
        ),
        Rule(
            cel="!has(self.variants) || self.variants.all(v, v.name != 'predictor')",
            message="'predictor' is reserved for the main predictor; pick another variant name",
            check=lambda s: s.variants is None or all(v.name != MAIN_COMPONENT for v in s.variants),
        ),
        Rule(
            cel="!has(self.variants) || "
            "self.variants.map(v, has(v.weight) ? v.weight : 0).sum() <= 100",
            message="the weights of all variants must add up to at most 100",
            check=lambda s: s.variants is None or sum(v.weight for v in s.variants) <= 100,
        ),
        Rule(
            cel="!has(self.auth) || !has(self.auth.mode) || self.auth.mode == 'tokens' || "
            "(has(self.predictor.model) && "
            "(!has(self.variants) || self.variants.all(v, has(v.predictor.model))))",
            message="auth modes serviceAccount and oidc are enforced by the bundled runtime: "
            "every predictor needs model, not containers",
            check=lambda s: (
                s.auth is None or not s.auth.jwt or all(p.model is not None for p in s.predictors())
            ),
        ),
        Rule(
            cel="!has(self.mirror) || "
            "(has(self.variants) && self.variants.exists(v, v.name == self.mirror.variant))",
            message="mirror.variant must name one of spec.variants",
            check=lambda s: (
                s.mirror is None or any(v.name == s.mirror.variant for v in s.variants or ())
            ),
        ),
        Rule(
            cel="!has(self.rollout) || !has(self.rollout.analysis) || has(self.feedback) || "
            "(!has(self.rollout.analysis.minAccuracy) && "
            "!has(self.rollout.analysis.maxQualityDrop))",
            message="rollout.analysis.minAccuracy and maxQualityDrop read ground-truth "
            "feedback: set spec.feedback too",
            check=lambda s: (
                s.feedback is not None
                or s.rollout is None
                or s.rollout.analysis is None
                or (
                    s.rollout.analysis.min_accuracy is None
                    and s.rollout.analysis.max_quality_drop is None
                )
            ),
        ),
        Rule(
            cel="!has(self.experiment) || "
            "(has(self.variants) && self.variants.exists(v, has(v.weight) && v.weight > 0))",
            message="experiment needs a variant with weight > 0: header-matched traffic is not "
            "randomized and is not counted",
            check=lambda s: s.experiment is None or any(v.weight > 0 for v in s.variants or ()),
        ),
        Rule(
            cel="!has(self.experiment) || !has(self.variants) || "
            "self.variants.map(v, has(v.weight) ? v.weight : 0).sum() < 100",
            message="experiment needs traffic on the main predictor (arm A): the variants' "
            "weights must add up to less than 100",
            check=lambda s: s.experiment is None or sum(v.weight for v in s.variants or ()) < 100,
        ),
    )

    predictor: Predictor = Field(description="The main predictor.")
    rollout: Rollout | None = Field(
        default=None,
        description="Canary rollout of new predictor revisions; unset = replace at once.",
    )
    variants: list[Variant] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_VARIANTS,
        description="A/B variants served next to the main predictor.",
    )
    mirror: Mirror | None = Field(default=None, description="Shadow traffic to a variant.")
    auth: Auth | None = Field(
        default=None,
        description="Require bearer tokens on inference requests: a token Secret, Kubernetes "
        "ServiceAccount tokens or OIDC tokens.",
    )
    feedback: Feedback | None = Field(
        default=None,
        description="Feedback tokens on every response and `POST /v2/models/{name}/feedback`, "
        "scored into live quality metrics per revision and variant.",
    )
    monitoring: Monitoring | None = Field(
        default=None, description="Act on the serving metrics: input drift."
    )

    experiment: Experiment | None = Field(
        default=None,
        description="A/B experiment: an always-valid sequential test of a metric between the "
        "main predictor and each weighted variant, reported in status.experiment.",
    )

    tls: Tls | None = Field(
        default=None, description="Serve TLS (and optionally require client certificates)."
    )
    network_policy: NetworkPolicy | None = Field(
        default=None,
        description="Restrict who reaches the predictor pods; on by default (operator config).",
    )

    def predictors(self) -> list[Predictor]:
        """The main predictor and every variant's."""
        return [self.predictor, *(v.predictor for v in self.variants or ())]


# --------------------------------------------------------------------------- monitoring


PsiThreshold = Annotated[float, Field(gt=0, le=100)]


class DriftMonitoring(ApiModel):
    """Act on input drift: the runtime's per-feature PSI (``kubeserve_input_drift_psi``,
    from the model's reference_profile.json) above a threshold for a duration."""

    threshold: PsiThreshold = Field(
        default=0.25,
        description="PSI above which a feature drifts (0.1 moderate, 0.25 major), unless "
        "`features` names its own.",
    )
    features: (
        dict[Annotated[str, StringConstraints(min_length=1, max_length=253)], PsiThreshold] | None
    ) = Field(
        default=None,
        max_length=256,
        description="Per-feature PSI thresholds (feature name -> threshold) overriding "
        "`threshold`.",
    )
    for_: Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)] = Field(
        default="5m",
        alias="for",
        description="How long a feature's PSI must stay above its threshold before "
        "DriftDetected turns True, e.g. 10m.",
    )
    webhook: Annotated[str, StringConstraints(pattern=r"^https?://.+$", max_length=2048)] | None = (
        Field(
            default=None,
            description="URL that receives a CloudEvent (HTTP binary mode, type "
            "io.kubeserve.drift.detected) naming the drifting features when drift is "
            "detected; the hook for retraining pipelines.",
        )
    )


class Monitoring(ApiModel):
    """What the operator watches in the serving metrics."""

    drift: DriftMonitoring | None = Field(
        default=None,
        description="Input drift of the stable revision: a DriftDetected condition, an "
        "Event and an optional webhook when PSI stays above a threshold.",
    )


# --------------------------------------------------------------------------- status


class Condition(ApiModel):
    """A Kubernetes condition (Ready, PredictorReady, RoutesReady, Rollout*, and the kstatus
    Reconciling and Stalled, present only while True)."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=316)] = Field(
        description="Condition type."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: Annotated[str, StringConstraints(max_length=1024)] | None = Field(
        default=None, description="CamelCase reason of the last transition."
    )
    message: Annotated[str, StringConstraints(max_length=32768)] | None = Field(
        default=None, description="Human-readable details."
    )
    last_transition_time: Timestamp | None = Field(
        default=None, description="When status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this condition was computed for."
    )


class RevisionQuality(ApiModel):
    """Ground-truth quality the operator read in the canary's last quality check."""

    scored: int = Field(ge=0, description="Scored predictions of this revision in that window.")
    accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Their accuracy (unset without feedback)."
    )


class RevisionStatus(ApiModel):
    """One revision of the main predictor and its share of traffic."""

    name: ShortString = Field(description="Name of the revision's Deployment and Service.")
    hash: ShortString = Field(description="Revision: short hash of the predictor spec.")
    traffic_percent: int | None = Field(
        default=None, ge=0, le=100, description="Percent of traffic it receives."
    )
    ready_replicas: int | None = Field(default=None, ge=0, description="Ready pods.")
    quality: RevisionQuality | None = Field(
        default=None,
        description="Live quality from feedback, while a canary's analysis checks "
        "minAccuracy or maxQualityDrop (canary and stable).",
    )


class RevisionHistoryEntry(ApiModel):
    """A past revision, kept for audit and fast GitOps rollback."""

    name: ShortString = Field(description="Name of the revision's Deployment.")
    hash: ShortString = Field(description="Revision hash.")
    outcome: ShortString | None = Field(
        default=None, description="How it ended: Promoted, RolledBack or Superseded."
    )
    time: Timestamp | None = Field(default=None, description="When it ended (RFC 3339).")
    message: Annotated[str, StringConstraints(max_length=4096)] | None = Field(
        default=None, description="Why, e.g. the analysis values of a rollback."
    )


class Revisions(ApiModel):
    """Revisions of the main predictor."""

    stable: RevisionStatus | None = Field(default=None, description="The serving revision.")
    canary: RevisionStatus | None = Field(
        default=None, description="The revision being rolled out, if any."
    )
    previous: RevisionStatus | None = Field(
        default=None, description="The revision stable replaced last."
    )
    history: list[RevisionHistoryEntry] | None = Field(
        default=None, description="Past revisions, newest first."
    )


class VariantStatus(ApiModel):
    """Observed state of the main predictor or an A/B variant."""

    name: ShortString = Field(description="Variant name; `predictor` for the main predictor.")
    revision: ShortString | None = Field(default=None, description="Serving revision.")
    weight: int | None = Field(default=None, ge=0, le=100, description="Traffic percent.")
    ready_replicas: int | None = Field(default=None, ge=0, description="Ready pods.")
    replicas: int | None = Field(default=None, ge=0, description="Desired pods.")


ExperimentDecision = Literal["Running", "BWins", "AWins", "NoDifference", "Inconclusive"]


class ExperimentArm(ApiModel):
    """One arm of an experiment: its samples, estimate and always-valid interval."""

    name: ShortString = Field(description="`predictor` (arm A) or the variant's name.")
    revision: ShortString | None = Field(default=None, description="Serving revision.")
    samples: int = Field(ge=0, description="Observations counted since the experiment started.")
    estimate: float = Field(description="The metric's mean (a rate for proportions).")
    lower: float | None = Field(default=None, description="Lower end of the interval.")
    upper: float | None = Field(default=None, description="Upper end of the interval.")


class ExperimentComparison(ApiModel):
    """A variant against the main predictor: the difference (variant - main) and verdict."""

    variant: ShortString = Field(description="The variant compared with the main predictor.")
    difference: float = Field(description="Variant estimate minus main estimate.")
    lower: float | None = Field(
        default=None, description="Lower end of the always-valid interval of the difference."
    )
    upper: float | None = Field(default=None, description="Upper end of that interval.")
    p_value: float = Field(
        ge=0, le=1, description="Always-valid p-value (valid however often it is looked at)."
    )
    decision: ExperimentDecision = Field(
        description="Running, BWins, AWins, NoDifference, Inconclusive."
    )
    decided_at: Timestamp | None = Field(default=None, description="When it was decided.")
    samples_needed: int | None = Field(
        default=None,
        ge=0,
        description="More samples (both arms) to detect minDetectableEffect, an estimate.",
    )


class ExperimentStatus(ApiModel):
    """What the A/B experiment shows so far."""

    metric: ShortString = Field(description="The metric tested.")
    started_at: Timestamp | None = Field(default=None, description="When counting started.")
    decision: ExperimentDecision = Field(
        description="Overall: BWins when a variant wins, AWins when the main predictor beats "
        "every variant, NoDifference or Inconclusive when all comparisons ended so, else "
        "Running."
    )
    decided_at: Timestamp | None = Field(default=None, description="When it was decided.")
    winner: ShortString | None = Field(default=None, description="The winning arm, if any.")
    promoted: bool | None = Field(
        default=None, description="The winner serves all unmatched traffic (onDecision promote)."
    )
    message: Annotated[str, StringConstraints(max_length=4096)] | None = Field(
        default=None, description="The result in words."
    )
    arms: list[ExperimentArm] | None = Field(
        default=None, max_length=MAX_VARIANTS + 1, description="The main predictor and variants."
    )
    comparisons: list[ExperimentComparison] | None = Field(
        default=None, max_length=MAX_VARIANTS, description="Each variant against the main one."
    )


class InferenceServiceStatus(ApiModel):
    """Observed state of an InferenceService, written by the operator."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the status reflects."
    )
    url: ShortString | None = Field(default=None, description="Where clients send requests.")
    conditions: list[Condition] | None = Field(
        default=None,
        description="Ready, PredictorReady, RoutesReady, rollout conditions, and the kstatus "
        "Reconciling and Stalled (present only while True).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    revisions: Revisions | None = Field(
        default=None, description="Stable, canary and previous revisions and their traffic."
    )
    rollout: RolloutStateObject | None = Field(
        default=None,
        description="The operator's rollout state (revisions with their predictor specs, "
        "canary step, analysis window, failed checks, history), kept here so a restarted "
        "operator resumes mid-rollout. Internal: read status.revisions and conditions "
        "instead; its shape may change between versions.",
    )
    drift: RolloutStateObject | None = Field(
        default=None,
        description="The operator's drift state (features above their threshold and since "
        "when, whether the webhook was told), kept so a restarted operator keeps counting. "
        "Internal: read the DriftDetected condition instead.",
    )
    variants: list[VariantStatus] | None = Field(
        default=None, description="The main predictor and each A/B variant."
    )
    experiment: ExperimentStatus | None = Field(
        default=None, description="The A/B experiment's estimates, intervals and decision."
    )
    replicas: int | None = Field(default=None, ge=0, description="Desired pods, all revisions.")
    ready_replicas: int | None = Field(default=None, ge=0, description="Ready pods, all revisions.")


# --------------------------------------------------------------------------- the object


class ObjectMeta(BaseModel):
    """Standard Kubernetes object metadata (only the fields kubeserve reads are typed)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=MAX_NAME_LENGTH)] = Field(
        description="Name; children are named <name>-<variant>-<revision>."
    )
    namespace: str = Field(default="default", description="Namespace.")
    uid: str | None = Field(default=None, description="Unique id set by the API server.")
    generation: int | None = Field(default=None, description="Spec generation.")
    labels: dict[str, str] | None = Field(default=None, description="Labels.")
    annotations: dict[str, str] | None = Field(default=None, description="Annotations.")


class InferenceService(ApiModel):
    """A model served on Kubernetes, with canary rollout, A/B variants and mirroring."""

    cel_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel=f"size(self.metadata.name) <= {MAX_NAME_LENGTH} && "
            f"self.metadata.name.matches('{DNS_LABEL}')",
            message=f"metadata.name must be a DNS label of at most {MAX_NAME_LENGTH} characters "
            "(lowercase letters, digits, '-'; starting with a letter): children are named "
            "<name>-<variant>-<revision>",
            check=lambda s: (
                len(s.metadata.name) <= MAX_NAME_LENGTH
                and re.fullmatch(DNS_LABEL, s.metadata.name) is not None
            ),
        ),
    )

    api_version: Literal["serving.kubeserve.io/v1alpha1"] = Field(
        default="serving.kubeserve.io/v1alpha1", description="serving.kubeserve.io/v1alpha1"
    )
    kind: Literal["InferenceService"] = Field(
        default="InferenceService", description="InferenceService"
    )
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: InferenceServiceSpec = Field(description="Desired state.")
    status: InferenceServiceStatus | None = Field(
        default=None, description="Observed state, written by the operator."
    )

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> InferenceService:
        """Parse an object as read from the API server or a YAML file."""
        return cls.model_validate(obj)

    def predictor_for(self, component: str) -> Predictor:
        """Return the predictor of the main component or of the named variant."""
        if component == MAIN_COMPONENT:
            return self.spec.predictor
        for variant in self.spec.variants or ():
            if variant.name == component:
                return variant.predictor
        raise KeyError(f"no variant named {component!r}")
