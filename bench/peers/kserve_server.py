"""KServe peer: KServe's ModelServer serving a ``kserve.Model`` subclass.

Runs inside ``bench/.venvs/kserve``. The scikit-learn class wraps the model exactly as
KServe's sklearnserver does (joblib.load, ``get_predict_input`` -> ``predict`` ->
``get_predict_response``); KServe ships no Python ONNX server (it sends ONNX to Triton),
so the ONNX class is the same pattern around an onnxruntime session. The ModelServer
runs with its defaults apart from the ports.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import onnxruntime as ort
from kserve import Model, ModelServer, model_server
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnModel(Model):  # type: ignore[misc]
    """sklearnserver's model class."""

    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self._model: Any = None

    def load(self) -> bool:
        """Load model.joblib."""
        self._model = joblib.load(Path(self.model_dir) / "model.joblib")
        self.ready = True
        return True

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """Predict like sklearnserver."""
        instances = get_predict_input(payload)
        result = self._model.predict(instances)
        return get_predict_response(payload, result, self.name)


class OnnxModel(Model):  # type: ignore[misc]
    """The same pattern around onnxruntime."""

    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self._session: Any = None
        self._input = ""

    def load(self) -> bool:
        """Load model.onnx."""
        self._session = ort.InferenceSession(
            str(Path(self.model_dir) / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self.ready = True
        return True

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        """Run the session on the first input."""
        instances = np.asarray(get_predict_input(payload), dtype=np.float32)
        result = self._session.run(None, {self._input: instances})[0]
        return get_predict_response(payload, result, self.name)


def main() -> None:
    """Parse KServe's standard arguments plus --model_dir/--model_format and serve."""
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--model_format", choices=["sklearn", "onnx"], required=True)
    args, _ = parser.parse_known_args()
    cls = SKLearnModel if args.model_format == "sklearn" else OnnxModel
    model = cls(args.model_name, args.model_dir)
    model.load()
    ModelServer().start([model])


if __name__ == "__main__":
    main()
