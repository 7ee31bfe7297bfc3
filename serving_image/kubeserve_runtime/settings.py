"""Runtime settings: environment variables with the ``KUBESERVE_`` prefix.

The operator configures pods through these variables; ``kubeserve-runtime serve`` flags
override them one for one (``--http-port`` beats ``KUBESERVE_HTTP_PORT``). Nothing here
reads argv or the environment at import time: ``RuntimeSettings()`` does, when called.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kubeserve_runtime import contract
from kubeserve_runtime.payloadlog.config import LoggerConfig
from kubeserve_runtime.schema import InputSchema
from kubeserve_runtime.tls import TlsFiles


class ModelFormat(StrEnum):
    """The model formats the runtime can load."""

    ONNX = "onnx"
    SKLEARN = "sklearn"
    XGBOOST = "xgboost"
    LIGHTGBM = "lightgbm"
    PYTORCH = "pytorch"
    CUSTOM = "custom"


MIB = 1024 * 1024
DEFAULT_SHUTDOWN_DELAY_SECONDS = 5.0
"""Kubernetes takes a few seconds to take a terminating pod out of Services and load
balancers; requests keep arriving meanwhile. The operator sets the delay explicitly;
this default protects a pod that was started some other way."""


def _default_threads() -> int:
    """Return the default inference thread count: the CPUs we may use, at most 4."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


class RuntimeSettings(BaseSettings):
    """Everything the serving runtime needs to know, from env or CLI flags."""

    model_config = SettingsConfigDict(
        env_prefix=contract.ENV_PREFIX, extra="ignore", protected_namespaces=()
    )

    model_dir: Path = Field(Path(contract.MODEL_DIR), description="model directory")
    model_name: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="name the model is served under",
    )
    model_version: str | None = Field(None, description="model version / revision")
    model_format: ModelFormat | None = Field(
        None, description="onnx|sklearn|xgboost|lightgbm|pytorch|custom; detected when unset"
    )
    host: str = Field("0.0.0.0", description="bind address")
    http_port: int = Field(contract.HTTP_PORT, ge=0, le=65535, description="REST port")
    grpc_port: int = Field(contract.GRPC_PORT, ge=0, le=65535, description="gRPC port, 0 disables")
    metrics_port: int = Field(contract.METRICS_PORT, ge=0, le=65535, description="Prometheus port")
    max_batch_size: int = Field(1, ge=1, description="rows per batch, 1 = no batching")
    max_latency_ms: float = Field(5.0, gt=0, description="longest wait to fill a batch")
    input_schema: InputSchema | None = Field(None, description="inputSchema as JSON")
    auth_token_file: Path | None = Field(None, description="bearer tokens, one per line")
    auth_mode: contract.AuthMode | None = Field(
        None,
        description="tokens|serviceAccount|oidc; unset = tokens when a token file is set, "
        "else no auth",
    )
    auth_audience: str | None = Field(None, description="the audience JWTs must carry")
    auth_issuer: str | None = Field(
        None,
        description="the issuer JWTs must name (oidc: required; serviceAccount: "
        "from the discovery document)",
    )
    auth_discovery_url: str | None = Field(
        None,
        description="OIDC discovery document; default: <issuer>/.well-known/openid-configuration "
        "(oidc), the in-cluster API server's (serviceAccount)",
    )
    auth_jwks_url: str | None = Field(
        None,
        description="JWKS address; default: the discovery document's (oidc), the in-cluster "
        "API server's (serviceAccount)",
    )
    auth_ca_file: Path | None = Field(
        None, description="CA bundle for fetching the discovery document and JWKS"
    )
    auth_fetch_token_file: Path | None = Field(
        None, description="bearer token sent when fetching the discovery document and JWKS"
    )
    auth_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="allowed callers, JSON list or comma-separated: namespace/name or "
        "namespace/* (serviceAccount), sub values (oidc; empty = any)",
    )
    auth_required_claims: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="claims every JWT must hold, as a JSON object"
    )
    auth_jwks_min_refresh_seconds: float = Field(
        10.0, ge=0.0, description="shortest time between JWKS fetches for unknown key ids"
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM serving certificate (chain); REST and gRPC serve TLS when set"
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of the certificate")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle; clients must present a certificate it signed (mTLS)"
    )
    tls_reload_seconds: float = Field(
        10.0, gt=0.0, description="how often the TLS files are checked for a new certificate"
    )
    max_request_bytes: int = Field(
        16 * MIB, ge=1024, description="largest request body or gRPC message (413 beyond)"
    )
    max_inflight_bytes: int | None = Field(
        None,
        ge=1024,
        description="request bodies held at once, summed (503 + Retry-After beyond); "
        "unset = 2 x max request bytes",
    )
    max_concurrent_requests: int = Field(
        1024,
        ge=1,
        description="inference requests handled at once per protocol (REST: 503 + "
        "Retry-After beyond, gRPC: RESOURCE_EXHAUSTED)",
    )
    max_connections: int = Field(
        2048, ge=1, description="open HTTP connections; requests beyond get 503"
    )
    max_header_bytes: int = Field(
        32 * 1024, ge=1024, description="request line and headers, in bytes (431 beyond)"
    )
    max_header_count: int = Field(100, ge=1, description="headers per request (431 beyond)")
    request_read_timeout_seconds: float = Field(
        30.0, gt=0.0, description="time for a request's headers and body to arrive (408 after)"
    )
    parse_worker_min_bytes: int = Field(
        256 * 1024,
        ge=0,
        description="V2 JSON bodies this large are parsed in a worker process, off the "
        "event loop; 0 = never",
    )
    max_queue: int = Field(1024, ge=1, description="requests allowed to wait for inference")
    log_sample_rate: float = Field(
        0.01, ge=0.0, le=1.0, description="share of requests logged (errors always are)"
    )
    inference_threads: int = Field(
        default_factory=_default_threads, ge=1, description="inference threads, min(4, CPUs)"
    )
    inline_inference_max_ms: float = Field(
        0.5, ge=0.0, description="model calls estimated this fast run on the event loop"
    )
    shutdown_delay_seconds: float = Field(
        DEFAULT_SHUTDOWN_DELAY_SECONDS,
        ge=0.0,
        description="after SIGTERM, readiness is false but requests are still accepted "
        "for this long (SIGINT skips it)",
    )
    drain_timeout_seconds: float = Field(
        20.0, gt=0.0, description="after the delay, longest wait for accepted requests"
    )

    feedback_key_file: Path | None = Field(
        None,
        description="HMAC keys for feedback tokens, one per line (the first signs, all "
        "verify; >= 32 bytes each); unset = no tokens, no feedback",
    )
    feedback_token_ttl_seconds: float = Field(
        86400.0, gt=0.0, description="how long a feedback token is accepted after the response"
    )
    feedback_task: Literal["auto", "classification", "regression"] = Field(
        "auto",
        description="how truths are scored: auto = regression for a floating-point first "
        "output, classification otherwise",
    )
    feedback_max_values: int = Field(
        1024, ge=1, description="predicted values a token may carry (larger responses get none)"
    )
    feedback_max_classes: int = Field(
        100, ge=2, description="distinct class labels a replica counts (metric label bound)"
    )
    feedback_seen_capacity: int = Field(
        100_000, ge=1, description="token ids remembered per replica to refuse duplicates"
    )
    namespace: str = Field("", description="namespace of the InferenceService (payload logs)")
    component: str = Field(
        contract.DEFAULT_COMPONENT,
        min_length=1,
        description="predictor or the A/B variant's name (payload logs, feedback, the "
        "variant label of request metrics)",
    )
    payload_logger: LoggerConfig | None = Field(
        None, description="payload logging (spec.predictor.logger) as JSON; unset = off"
    )

    @property
    def inflight_bytes_limit(self) -> int:
        """The in-flight body budget: the setting, or twice the largest body."""
        return self.max_inflight_bytes or 2 * self.max_request_bytes

    @model_validator(mode="after")
    def _one_body_fits(self) -> Self:
        """Refuse a body budget that could never admit a body of the largest size."""
        if self.inflight_bytes_limit < self.max_request_bytes:
            raise ValueError(
                f"max_inflight_bytes ({self.max_inflight_bytes}) is below "
                f"max_request_bytes ({self.max_request_bytes}): no large body could be admitted"
            )
        return self

    @model_validator(mode="after")
    def _tls_complete(self) -> Self:
        """Refuse half a TLS configuration: cert without key, or a client CA without TLS."""
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file")
        return self

    @property
    def tls_files(self) -> TlsFiles | None:
        """The TLS files, or None when the ports serve clear text."""
        if self.tls_cert_file is None or self.tls_key_file is None:
            return None
        return TlsFiles(self.tls_cert_file, self.tls_key_file, self.tls_client_ca_file)

    @model_validator(mode="after")
    def _auth_complete(self) -> Self:
        """Refuse an auth mode that lacks what it needs, naming what is missing."""
        mode = self.effective_auth_mode
        if mode == "tokens" and self.auth_token_file is None:
            raise ValueError("auth mode tokens needs auth_token_file")
        if mode in ("serviceAccount", "oidc") and not self.auth_audience:
            raise ValueError(f"auth mode {mode} needs auth_audience")
        if mode == "oidc" and not self.auth_issuer:
            raise ValueError("auth mode oidc needs auth_issuer (the issuer URL)")
        if mode == "serviceAccount":
            if not self.auth_allow:
                raise ValueError(
                    "auth mode serviceAccount needs auth_allow: namespace/name or namespace/* "
                    "entries (otherwise every ServiceAccount of the cluster could call)"
                )
            bad = [a for a in self.auth_allow if not re.match(contract.SA_ALLOW_PATTERN, a)]
            if bad:
                raise ValueError(f"auth_allow entries must be namespace/name or namespace/*: {bad}")
        return self

    @property
    def effective_auth_mode(self) -> str | None:
        """The auth mode in force: the setting, else tokens when a token file is set."""
        if self.auth_mode is not None:
            return self.auth_mode
        return "tokens" if self.auth_token_file is not None else None

    @field_validator("auth_allow", mode="before")
    @classmethod
    def _parse_allow(cls, value: Any) -> Any:
        """Accept a JSON list or a comma-separated string (flag or env)."""
        if isinstance(value, str):
            if value.strip().startswith("["):
                return orjson.loads(value)
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("auth_required_claims", mode="before")
    @classmethod
    def _parse_claims(cls, value: Any) -> Any:
        """Accept the required claims as a JSON object string (flag or env)."""
        if isinstance(value, str | bytes):
            try:
                return orjson.loads(value) if value.strip() else {}
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"auth_required_claims is not a JSON object: {exc}") from exc
        return value

    @field_validator("input_schema", "payload_logger", mode="before")
    @classmethod
    def _parse_json(cls, value: Any, info: ValidationInfo) -> Any:
        """Accept inputSchema and the payload logger as JSON strings (flag or env) or
        as mappings."""
        if isinstance(value, str | bytes):
            if not value.strip():
                return None
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                what = {"input_schema": "inputSchema"}.get(str(info.field_name), "payloadLogger")
                raise ValueError(f"{what} is not valid JSON: {exc}") from exc
        return value

    @field_validator(
        "model_version",
        "model_format",
        "auth_mode",
        "auth_audience",
        "auth_issuer",
        "auth_discovery_url",
        "auth_jwks_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """Treat an empty string (an env var set to nothing) as unset."""
        return None if value == "" else value
