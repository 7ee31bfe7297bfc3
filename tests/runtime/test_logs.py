"""Sampled JSON request logs: which requests are written, and what a line holds."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest

from kubeserve_runtime.logs import JsonFormatter, RequestLog, prediction_logger
from kubeserve_runtime.payloads import Tensor
from kubeserve_runtime.settings import RuntimeSettings


def test_default_samples_one_percent_of_successes() -> None:
    """By default 1% of successful requests are logged (errors always are)."""
    assert RuntimeSettings(model_name="m").log_sample_rate == 0.01


@pytest.mark.parametrize(("rate", "status", "logged"), [(0.0, 200, False), (0.0, 503, True)])
def test_errors_are_always_sampled(rate: float, status: int, logged: bool) -> None:
    """Rate 0 drops successes but never errors."""
    assert RequestLog(rate).sampled(status) is logged


def test_rate_one_writes_every_request_as_json() -> None:
    """At rate 1 every request is sampled and a prediction line previews its tensors."""
    log = RequestLog(1.0)
    assert all(log.sampled(200) for _ in range(100))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    prediction_logger.addHandler(handler)
    previous = prediction_logger.level
    prediction_logger.setLevel(logging.INFO)
    try:
        inputs = [Tensor("x", "FP32", np.arange(40, dtype=np.float32).reshape(1, 40))]
        outputs = [Tensor("y", "INT64", np.array([2]))]
        log.prediction("m", "req-1", inputs, outputs)
    finally:
        prediction_logger.removeHandler(handler)
        prediction_logger.setLevel(previous)
    entry = json.loads(stream.getvalue())
    assert entry["request_id"] == "req-1"
    assert entry["inputs"][0]["shape"] == [1, 40]
    assert len(entry["inputs"][0]["data"]) == 16
    assert entry["outputs"][0]["data"] == [2]
