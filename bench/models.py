"""The benchmark's models and payloads, trained fresh (fixed seeds) for each run.

- sklearn: LogisticRegression, 3 classes, 32 features, saved with joblib.
- onnx: a 32-256-256-4 MLP (scikit-learn MLPRegressor converted with skl2onnx, its
  final reshape corrected), one FP32 input [N, 32] (named as the graph declares it) and
  one FP32 output [N, 4].

Every server gets the same files and the same request: an Open Inference Protocol V2
JSON infer body with one row of FP32 data.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = 32
INPUT_NAME = "input-0"


@dataclass(frozen=True)
class BenchModel:
    """One model: its format, its file and a single-row request row."""

    name: str
    model_format: str
    file: Path
    row: tuple[float, ...]
    input_name: str = INPUT_NAME

    @property
    def directory(self) -> Path:
        """The directory holding the model file."""
        return self.file.parent

    def payload(self) -> bytes:
        """The V2 JSON infer request every server receives."""
        body = {
            "inputs": [
                {
                    "name": self.input_name,
                    "shape": [1, FEATURES],
                    "datatype": "FP32",
                    "data": list(self.row),
                }
            ]
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def features(self) -> Any:
        """The row as a (1, FEATURES) float32 array."""
        return np.asarray([self.row], dtype=np.float32)


def _data(seed: int) -> tuple[Any, Any]:
    """A synthetic classification problem."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=2000, n_features=FEATURES, n_informative=12, n_classes=3, random_state=seed
    )
    return x, y


def make_models(root: Path) -> dict[str, BenchModel]:
    """Train both models into root/<name>/ and return them."""
    import joblib
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPRegressor

    x, y = _data(seed=7)
    x = x.astype(np.float32)
    row = tuple(round(float(v), 5) for v in x[0])

    sklearn_dir = root / "sklearn"
    sklearn_dir.mkdir(parents=True, exist_ok=True)
    classifier = LogisticRegression(max_iter=500).fit(x, y)
    joblib.dump(classifier, sklearn_dir / "model.joblib")

    onnx_dir = root / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    targets = np.eye(4, dtype=np.float32)[np.asarray(y) % 4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPRegressor(hidden_layer_sizes=(256, 256), max_iter=20, random_state=7)
        mlp.fit(x, targets)
    onnx_model = convert_sklearn(
        mlp, initial_types=[(INPUT_NAME, FloatTensorType([None, FEATURES]))], target_opset=17
    )
    _fix_output_shape(onnx_model, outputs=4)
    (onnx_dir / "model.onnx").write_bytes(onnx_model.SerializeToString())

    return {
        "sklearn": BenchModel("sklearn", "sklearn", sklearn_dir / "model.joblib", row),
        # skl2onnx sanitises the name ("input-0" -> "input_0"); send what the graph declares.
        "onnx": BenchModel(
            "onnx", "onnx", onnx_dir / "model.onnx", row, onnx_model.graph.input[0].name
        ),
    }


def _fix_output_shape(model: Any, outputs: int) -> None:
    """Make the MLP's output [N, outputs]: skl2onnx reshapes it to [N * outputs, 1].

    The converter ends the graph with ``Reshape(shape_tensor = [-1, 1])`` and declares
    the output ``[None, 1]`` whatever the regressor's ``n_outputs_``, which breaks the
    batch dimension (and with it any server's batching). Patch both to ``[-1, outputs]``.
    """
    from onnx import numpy_helper

    last = model.graph.node[-1]
    if last.op_type != "Reshape":
        return
    for index, init in enumerate(model.graph.initializer):
        if init.name == last.input[1]:
            fixed = numpy_helper.from_array(np.array([-1, outputs], dtype=np.int64), init.name)
            model.graph.initializer[index].CopyFrom(fixed)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    if len(dims) == 2:
        dims[1].dim_value = outputs
