"""Runtime settings: environment variables with the ``KUBESERVE_`` prefix.

The operator configures pods through these variables; ``kubeserve-runtime serve`` flags
override them one for one (``--http-port`` beats ``KUBESERVE_HTTP_PORT``). Nothing here
reads argv or the environment at import time: ``RuntimeSettings()`` does, when called.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import orjson
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kubeserve_runtime import contract
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

    @field_validator("input_schema", mode="before")
    @classmethod
    def _parse_schema(cls, value: Any) -> Any:
        """Accept the inputSchema as a JSON string (flag or env) or as a mapping."""
        if isinstance(value, str | bytes):
            if not value.strip():
                return None
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"inputSchema is not valid JSON: {exc}") from exc
        return value

    @field_validator("model_version", "model_format", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """Treat an empty string (an env var set to nothing) as unset."""
        return None if value == "" else value
