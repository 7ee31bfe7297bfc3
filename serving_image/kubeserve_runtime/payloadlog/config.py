"""What the runtime's payload logger is told to do: the JSON the operator renders.

Limits: at most ``MAX_SINKS`` sinks; the queue is bounded (``queueSize`` records per
sink, a record being one request with its response); the flush at shutdown is bounded
by ``flushTimeoutSeconds``. The shape is the API's ``spec.predictor.logger`` in
camelCase, except that an http sink names the directory its extra headers are mounted
in (``headersDir``, one file per header) instead of the Secret, which only the operator
knows. Parsed from ``KUBESERVE_PAYLOAD_LOGGER`` (or ``--payload-logger``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

MAX_SINKS = 8
Mode = Literal["all", "request", "response"]
SseAlgorithm = Literal["AES256", "aws:kms", "aws:kms:dsse"]


class _Model(BaseModel):
    """camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_alias=True, validate_by_name=True, extra="forbid"
    )


class HttpSink(_Model):
    """CloudEvents over HTTP: binary mode (batchSize 1) or batch mode (batchSize > 1)."""

    url: str = Field(pattern=r"^https?://.+", description="receiver URL")
    batch_size: int = Field(1, ge=1, le=1000, description="events per POST; >1 = batch mode")
    headers_dir: Path | None = Field(None, description="extra headers, one file per header")
    timeout_seconds: float = Field(5.0, gt=0, le=60, description="per POST")


class S3Sink(_Model):
    """JSON Lines objects, one per flush, under ``<prefix>/<ns>/<isvc>/<revision>/<date>/``."""

    uri: str = Field(pattern=r"^s3://[^/]+(/.*)?$", description="s3://bucket/prefix")
    max_events: int = Field(1000, ge=1, le=100_000, description="events per object")
    flush_interval_seconds: float = Field(10.0, gt=0, le=3600, description="oldest event's wait")
    server_side_encryption: SseAlgorithm | None = None
    kms_key_id: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _kms_key_needs_kms(self) -> Self:
        """A KMS key id only means something with aws:kms encryption."""
        if self.kms_key_id and not (self.server_side_encryption or "").startswith("aws:kms"):
            raise ValueError("kmsKeyId needs serverSideEncryption aws:kms or aws:kms:dsse")
        return self


class StdoutSink(_Model):
    """JSON lines on the runtime's stdout, for the cluster's log pipeline."""


class SinkConfig(_Model):
    """Exactly one of http, s3 or stdout."""

    http: HttpSink | None = None
    s3: S3Sink | None = None
    stdout: StdoutSink | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        """Refuse a sink entry naming none or several kinds."""
        kinds = [k for k in ("http", "s3", "stdout") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a sink sets exactly one of http, s3, stdout (got {kinds or 'none'})")
        return self

    @property
    def kind(self) -> str:
        """http, s3 or stdout."""
        return "http" if self.http else "s3" if self.s3 else "stdout"


class LoggerConfig(_Model):
    """The payload logger: what to log, how much of it, and where to."""

    mode: Mode = "all"
    sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    redact: list[str] = Field(default_factory=list, max_length=64)
    sinks: list[SinkConfig] = Field(min_length=1, max_length=MAX_SINKS)
    queue_size: int = Field(10_000, ge=1, le=1_000_000, description="records per sink")
    flush_timeout_seconds: float = Field(5.0, ge=0, le=60, description="at shutdown")
