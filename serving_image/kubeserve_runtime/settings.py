"""Runtime settings: environment variables with the ``KUBESERVE_`` prefix.

The operator configures pods through these variables; ``kubeserve-runtime serve`` flags
override them one for one (``--http-port`` beats ``KUBESERVE_HTTP_PORT``). Nothing here
reads argv or the environment at import time: ``RuntimeSettings()`` does, when called.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kubeserve_runtime.schema import InputSchema


class ModelFormat(StrEnum):
    """The model formats the runtime can load."""

    ONNX = "onnx"
    SKLEARN = "sklearn"
    XGBOOST = "xgboost"
    LIGHTGBM = "lightgbm"
    PYTORCH = "pytorch"
    CUSTOM = "custom"


def _default_threads() -> int:
    """Return the default inference thread count: the CPUs we may use, at most 4."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


class RuntimeSettings(BaseSettings):
    """Everything the serving runtime needs to know, from env or CLI flags."""

    model_config = SettingsConfigDict(
        env_prefix="KUBESERVE_", extra="ignore", protected_namespaces=()
    )

    model_dir: Path = Path("/mnt/models")
    model_name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    model_version: str | None = None
    model_format: ModelFormat | None = None
    host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)
    grpc_port: int = Field(default=8081, ge=0, le=65535)
    metrics_port: int = Field(default=8082, ge=0, le=65535)
    max_batch_size: int = Field(default=1, ge=1)
    max_latency_ms: float = Field(default=5.0, gt=0)
    input_schema: InputSchema | None = None
    auth_token_file: Path | None = None
    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_queue: int = Field(default=1024, ge=1)
    log_sample_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    inference_threads: int = Field(default_factory=_default_threads, ge=1)
    inline_inference_max_ms: float = Field(default=0.5, ge=0.0)
    shutdown_delay_seconds: float = Field(default=0.0, ge=0.0)
    drain_timeout_seconds: float = Field(default=30.0, gt=0.0)

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
