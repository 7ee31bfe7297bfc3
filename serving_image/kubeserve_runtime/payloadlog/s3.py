"""The s3 sink: one JSON Lines object per flush, on any S3-compatible store.

Limits: an object holds at most ``maxEvents`` events and is written when full or when
its oldest event has waited ``flushIntervalSeconds``; a failed upload is retried by the
sender, then dropped (never buffered on disk). Keys are
``<prefix>/<namespace>/<inferenceservice>/<revision>/<YYYY-MM-DD>/<time>-<host>-<n>.jsonl``
(UTC date and time of the flush; host and a counter keep replicas and flushes apart).
Each line is one event in CloudEvents structured JSON. ``serverSideEncryption`` and
``kmsKeyId`` are passed to PutObject as they are. Client settings (credentials,
endpoint, region) come from the container's environment exactly as for model
downloads (``kubeserve_runtime.storage.s3``).
"""

from __future__ import annotations

import itertools
import socket
from datetime import UTC, datetime
from typing import Any

import orjson

from kubeserve_runtime.payloadlog.config import S3Sink as S3SinkConfig
from kubeserve_runtime.payloadlog.event import Event, Origin
from kubeserve_runtime.storage.options import DownloadOptions
from kubeserve_runtime.storage.s3 import s3_client, s3_config


def object_key(prefix: str, origin: Origin, now: datetime, host: str, sequence: int) -> str:
    """The key of one flush's object."""
    folder = "/".join(
        part
        for part in (
            prefix.strip("/"),
            origin.namespace or "default",
            origin.isvc,
            origin.revision or "unversioned",
            now.strftime("%Y-%m-%d"),
        )
        if part
    )
    return f"{folder}/{now.strftime('%H%M%S%f')}-{host}-{sequence}.jsonl"


def jsonl(events: list[Event]) -> bytes:
    """Events as JSON Lines (structured CloudEvents, one per line)."""
    return b"".join(orjson.dumps(e.structured()) + b"\n" for e in events)


def put_arguments(config: S3SinkConfig) -> dict[str, str]:
    """PutObject's encryption arguments, passed through as configured."""
    args: dict[str, str] = {}
    if config.server_side_encryption is not None:
        args["ServerSideEncryption"] = config.server_side_encryption
    if config.kms_key_id is not None:
        args["SSEKMSKeyId"] = config.kms_key_id
    return args


class S3Sink:
    """Writes a JSONL object per batch."""

    def __init__(self, config: S3SinkConfig, origin: Origin, client: Any = None) -> None:
        bucket, _, prefix = config.uri.removeprefix("s3://").partition("/")
        self.bucket, self.prefix = bucket, prefix
        self.max_batch = config.max_events
        self.max_wait_s = config.flush_interval_seconds
        self._origin = origin
        self._put = put_arguments(config)
        self._host = socket.gethostname()
        self._sequence = itertools.count()
        self._client = client or s3_client(s3_config(DownloadOptions.from_environment()))

    def send(self, events: list[Event]) -> None:
        """Upload the events as one object."""
        key = object_key(
            self.prefix, self._origin, datetime.now(UTC), self._host, next(self._sequence)
        )
        self._client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=jsonl(events),
            ContentType="application/x-ndjson",
            **self._put,
        )

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()
