"""The floor's compute half: the model's own predict call, in process, one row at a time.

No server can answer faster than this plus the bare HTTP echo on the same stack.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from models import BenchModel


def _predictor(model: BenchModel) -> Callable[[], Any]:
    """A zero-argument call that runs one prediction of the benchmark row."""
    x = model.features()
    if model.model_format == "sklearn":
        import joblib

        estimator = joblib.load(model.file)
        return lambda: estimator.predict(x)
    import onnxruntime as ort

    session = ort.InferenceSession(str(model.file), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda: session.run(None, {name: x})


def predict_timing(model: BenchModel, seconds: float = 2.0) -> dict[str, float]:
    """Time single-row predictions for about `seconds`; microseconds p50/p99/mean."""
    call = _predictor(model)
    for _ in range(100):
        call()
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return {
        "calls": len(samples),
        "p50_us": round(samples[len(samples) // 2], 1),
        "p99_us": round(samples[int(len(samples) * 0.99)], 1),
        "mean_us": round(statistics.fmean(samples), 1),
    }
