"""Structured JSON logs: one object per line on stdout.

``configure_logging`` installs a formatter that writes ``{"ts", "level", "logger",
"msg", ...fields}`` with orjson. Access lines (one per request) and prediction lines
(inputs and outputs, each tensor cut to ``PREVIEW`` values) are sampled at
``log_sample_rate`` (default 0.01: writing both lines costs about as much as the rest
of a small model's request); errors (status >= 400) are always written. Nothing is
built or formatted for a request that is not sampled.
"""

from __future__ import annotations

import logging
import random
import sys
from typing import Any

import numpy as np
import orjson

from kubeserve_runtime.payloads import Tensor

PREVIEW = 16
access_logger = logging.getLogger("kubeserve_runtime.access")
prediction_logger = logging.getLogger("kubeserve_runtime.prediction")


class JsonFormatter(logging.Formatter):
    """Formats records as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON line for a record."""
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def configure_logging(level: int = logging.INFO) -> None:
    """Send every log record to stdout as JSON."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def preview(tensors: list[Tensor]) -> list[dict[str, Any]]:
    """Return a short, JSON-ready description of tensors for prediction logs."""
    out = []
    for t in tensors:
        flat = t.data.ravel()[:PREVIEW]
        values = [v.decode("utf-8", "replace") for v in flat] if t.datatype == "BYTES" else flat
        out.append({"name": t.name, "datatype": t.datatype, "shape": t.shape, "data": values})
    return out


class RequestLog:
    """Writes sampled access and prediction lines."""

    def __init__(self, sample_rate: float) -> None:
        self._rate = sample_rate
        self._random = random.random

    def sampled(self, status: int) -> bool:
        """Return whether a request with this status gets logged."""
        return status >= 400 or (self._rate > 0 and self._random() < self._rate)

    def access(self, fields: dict[str, Any]) -> None:
        """Write one access line."""
        access_logger.info("request", extra={"fields": fields})

    def prediction(
        self, model: str, request_id: str, inputs: list[Tensor], outputs: list[Tensor]
    ) -> None:
        """Write one prediction line with previews of the payload."""
        prediction_logger.info(
            "prediction",
            extra={
                "fields": {
                    "model": model,
                    "request_id": request_id,
                    "inputs": preview(inputs),
                    "outputs": preview(outputs),
                }
            },
        )


def to_list(array: np.ndarray[Any, Any]) -> list[Any]:
    """Return an array's values as a flat list (for JSON without numpy support)."""
    return list(array.ravel().tolist())
