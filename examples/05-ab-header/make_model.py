"""Train this example's two competing models: ``a`` (logistic regression), ``b`` (decision tree).

Usage: ``python examples/05-ab-header/make_model.py [--out DIR]`` writes
``DIR/a/model.joblib`` (the main predictor) and ``DIR/b/model.joblib`` (variant ``b``);
default DIR: ``model/`` next to this file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import joblib
from sklearn.base import ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

HERE = Path(__file__).resolve().parent


def train() -> dict[str, ClassifierMixin]:
    """Fit both models on the iris flowers."""
    features, labels = load_iris(return_X_y=True)
    return {
        "a": LogisticRegression(max_iter=1000).fit(features, labels),
        "b": DecisionTreeClassifier(max_depth=3, random_state=0).fit(features, labels),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write a/model.joblib and b/model.joblib into the output folder."""
    parser = argparse.ArgumentParser(description="Train the A/B iris models of example 05.")
    parser.add_argument("--out", type=Path, default=HERE / "model", help="output folder")
    args = parser.parse_args(argv)
    for name, estimator in train().items():
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(estimator, folder / "model.joblib")
        print(f"wrote {folder / 'model.joblib'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
