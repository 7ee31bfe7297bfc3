"""Sampled JSON request logs: which requests are written, and what a line holds."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from kubeserve_runtime.dataplane import DataPlane
from kubeserve_runtime.logs import JsonFormatter, RequestLog, access_logger, prediction_logger
from kubeserve_runtime.metrics import RuntimeMetrics
from kubeserve_runtime.payloads import Tensor
from kubeserve_runtime.settings import RuntimeSettings


def test_default_samples_one_percent_of_successes() -> None:
    """By default 1% of successful requests are logged (errors always are)."""
    assert RuntimeSettings(model_name="m").log_sample_rate == 0.01


@pytest.mark.parametrize(("rate", "status", "logged"), [(0.0, 200, False), (0.0, 503, True)])
def test_errors_are_always_sampled(rate: float, status: int, logged: bool) -> None:
    """Rate 0 drops successes but never errors."""
    assert RequestLog(rate).sampled(status) is logged


@contextmanager
def _captured(logger: logging.Logger) -> Iterator[io.StringIO]:
    """Collect a logger's INFO lines, JSON-formatted, for the duration of the block."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def test_rate_one_writes_every_request_as_json() -> None:
    """At rate 1 every request is sampled and a prediction line previews its tensors."""
    log = RequestLog(1.0)
    assert all(log.sampled(200) for _ in range(100))
    with _captured(prediction_logger) as stream:
        inputs = [Tensor("x", "FP32", np.arange(40, dtype=np.float32).reshape(1, 40))]
        outputs = [Tensor("y", "INT64", np.array([2]))]
        log.prediction("m", "req-1", inputs, outputs)
    entry = json.loads(stream.getvalue())
    assert entry["request_id"] == "req-1"
    assert entry["inputs"][0]["shape"] == [1, 40]
    assert len(entry["inputs"][0]["data"]) == 16
    assert entry["outputs"][0]["data"] == [2]


def test_access_lines_name_path_only_when_the_transport_has_one() -> None:
    """REST access lines carry the path; gRPC lines (method only) have no path key."""
    settings = RuntimeSettings(model_name="iris", log_sample_rate=1.0)
    with ThreadPoolExecutor(1) as executor:
        plane = DataPlane(settings, RuntimeMetrics(CollectorRegistry(), "iris", ""), executor)
    with _captured(access_logger) as stream:
        plane.access("v2", "POST", 200, 0.0012345, "10.0.0.7", "/v2/models/iris/infer")
        plane.access("grpc", "ModelInfer", 404, 0.002, "ipv4:10.0.0.8:5000")
    rest, grpc = (json.loads(line) for line in stream.getvalue().splitlines())
    expected_rest = {
        "method": "POST",
        "path": "/v2/models/iris/infer",
        "status": 200,
        "duration_ms": 1.234,
        "protocol": "v2",
        "model": "iris",
        "client": "10.0.0.7",
    }
    assert {k: rest[k] for k in expected_rest} == expected_rest
    assert "path" not in grpc
    assert (grpc["method"], grpc["status"], grpc["protocol"], grpc["client"]) == (
        "ModelInfer",
        404,
        "grpc",
        "ipv4:10.0.0.8:5000",
    )
