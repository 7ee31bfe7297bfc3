"""Payload events: what one prediction leaves on record, and its CloudEvents form.

Limits: tensors are logged in full (no preview cut), as Open Inference Protocol V2 JSON
(``name``, ``datatype``, ``shape``, flat ``data``), whatever protocol the request came
in (V1, V2 JSON or binary, gRPC); BYTES values are decoded as UTF-8 with replacement
characters, so non-text bytes are not logged exactly. A redacted tensor keeps its
name, datatype and shape; its data becomes ``REDACTED``.

The hot path builds a ``Record`` (references to the already decoded tensors, no copy,
no serialisation); the sender thread turns it into events. Each event has the
attributes of KServe's payload logger (``id`` = the request id, ``type``
``org.kubeflow.serving.inference.request|response``, ``source``,
``inferenceservicename``, ``namespace``, ``component``, ``endpoint``) plus
``revision``, ``variant``, ``model``, ``protocol`` and, when the request was
authenticated, ``subject`` (the caller; filled by whoever sets ``Record.subject``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from kubeserve_runtime.payloads import Tensor

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
SPEC_VERSION = "1.0"
REDACTED = "REDACTED"
CONTENT_TYPE = "application/json"
MAIN_COMPONENT = "predictor"
"""The main predictor's component; KServe's ``endpoint`` for it is ``default``."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where events come from: fixed for the life of the process."""

    isvc: str
    namespace: str
    variant: str
    revision: str
    source: str

    @property
    def endpoint(self) -> str:
        """KServe's endpoint attribute: ``default`` for the main predictor, else the variant."""
        return "default" if self.variant == MAIN_COMPONENT else self.variant


@dataclass(frozen=True, slots=True)
class Record:
    """One logged prediction, as the hot path leaves it (references, nothing encoded)."""

    request_id: str
    received: float
    answered: float
    protocol: str
    inputs: list[Tensor]
    outputs: list[Tensor]
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One CloudEvent to deliver: attributes and JSON-ready data."""

    attributes: dict[str, str]
    data: dict[str, Any]

    def structured(self) -> dict[str, Any]:
        """The event in CloudEvents JSON (structured) form: attributes plus ``data``."""
        return {**self.attributes, "datacontenttype": CONTENT_TYPE, "data": self.data}


def _timestamp(seconds: float) -> str:
    """RFC 3339 UTC time with microseconds."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def tensor_json(tensor: Tensor, redact: frozenset[str]) -> dict[str, Any]:
    """A tensor in V2 JSON form, its data replaced by ``REDACTED`` when its name is listed."""
    out: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
    if tensor.name in redact:
        out["data"] = REDACTED
    elif tensor.datatype == "BYTES":
        out["data"] = [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in tensor.data.ravel()
        ]
    else:
        out["data"] = np.ravel(tensor.data).tolist()
    return out


def record_events(
    record: Record, origin: Origin, model: str, mode: str, redact: frozenset[str]
) -> list[Event]:
    """The request and/or response events of a record (by ``mode``: all|request|response)."""
    base = {
        "specversion": SPEC_VERSION,
        "id": record.request_id,
        "source": origin.source,
        "inferenceservicename": origin.isvc,
        "namespace": origin.namespace,
        "component": MAIN_COMPONENT,
        "endpoint": origin.endpoint,
        "revision": origin.revision,
        "variant": origin.variant,
        "model": model,
        "protocol": record.protocol,
    }
    if record.subject is not None:
        base["subject"] = record.subject
    events = []
    if mode in ("all", "request"):
        events.append(
            Event(
                {**base, "type": REQUEST_TYPE, "time": _timestamp(record.received)},
                {
                    "id": record.request_id,
                    "inputs": [tensor_json(t, redact) for t in record.inputs],
                },
            )
        )
    if mode in ("all", "response"):
        events.append(
            Event(
                {**base, "type": RESPONSE_TYPE, "time": _timestamp(record.answered)},
                {
                    "model_name": model,
                    "model_version": origin.revision or None,
                    "id": record.request_id,
                    "outputs": [tensor_json(t, redact) for t in record.outputs],
                },
            )
        )
    return events
