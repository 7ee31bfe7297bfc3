"""A custom handler: iris measurements in millimetres in, species name and confidence out.

The runtime imports ``handler.py`` from the model directory and uses its ``Handler``
class (see ``kubeserve_runtime.models.custom``): ``load(model_dir)`` once at start-up,
then ``preprocess`` -> ``predict`` -> ``postprocess`` per (batched) request. ``inputs``
and ``outputs`` describe the tensors for ``/v2/models/{name}`` metadata and request
validation. ``make_model.py`` copies this file next to the trained ``model.joblib``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt

MM_PER_CM = 10.0


class Handler:
    """Wraps a scikit-learn classifier trained on centimetres."""

    inputs = [{"name": "measurements_mm", "datatype": "FP32", "shape": [-1, 4]}]
    outputs = [
        {"name": "species", "datatype": "INT64", "shape": [-1]},
        {"name": "confidence", "datatype": "FP32", "shape": [-1]},
    ]
    batchable = True

    def load(self, model_dir: Path) -> None:
        """Load the estimator and the class names written by make_model.py."""
        self.estimator: Any = joblib.load(model_dir / "model.joblib")
        self.species: list[str] = json.loads((model_dir / "classes.json").read_text())

    def preprocess(self, feed: dict[str, npt.NDArray[Any]]) -> npt.NDArray[np.float64]:
        """Millimetres (as clients send them) -> centimetres (as the model was trained)."""
        return np.asarray(feed["measurements_mm"], dtype=np.float64) / MM_PER_CM

    def predict(self, data: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Class probabilities, one row per flower."""
        return np.asarray(self.estimator.predict_proba(data), dtype=np.float64)

    def postprocess(self, probabilities: npt.NDArray[np.float64]) -> dict[str, npt.NDArray[Any]]:
        """The most likely species index and its probability."""
        return {
            "species": probabilities.argmax(axis=1).astype(np.int64),
            "confidence": probabilities.max(axis=1).astype(np.float32),
        }
