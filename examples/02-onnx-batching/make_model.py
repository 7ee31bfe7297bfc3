"""Train this example's model: a small iris MLP exported to ONNX with skl2onnx.

Usage: ``python examples/02-onnx-batching/make_model.py [--out DIR]`` (default: ``model/``
next to this file). The graph takes ``float_input`` FP32 ``[-1, 4]`` and returns
``label`` (INT64) and ``probabilities`` (FP32 ``[-1, 3]``); the batch axis is dynamic, so
the runtime's adaptive batcher can stack concurrent requests into one run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent


def train() -> Pipeline:
    """Fit a scaler + 16-unit MLP on the iris flowers."""
    features, labels = load_iris(return_X_y=True)
    mlp = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=0)
    return make_pipeline(StandardScaler(), mlp).fit(features, labels)


def main(argv: Sequence[str] | None = None) -> int:
    """Write model.onnx into the output folder."""
    parser = argparse.ArgumentParser(description="Train the ONNX iris MLP of example 02.")
    parser.add_argument("--out", type=Path, default=HERE / "model", help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_model = to_onnx(
        train(),
        initial_types=[("float_input", FloatTensorType([None, 4]))],
        options={"zipmap": False},  # plain tensors, not a list of dicts
        target_opset=17,
    )
    path = args.out / "model.onnx"
    path.write_bytes(onnx_model.SerializeToString())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
