"""Train this example's models: a good and a worse iris classifier, saved with joblib.

Usage: ``python examples/07-feedback/make_model.py [--out DIR]`` (default: ``model/``
next to this file) writes ``v1/model.joblib`` (logistic regression, ~97% on iris) and
``v2/model.joblib`` (a one-split decision tree, ~67%): roll out v2 and the quality gate
rolls it back once truths arrive.
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
    """Fit both classifiers on the 150 iris flowers (4 features, 3 classes)."""
    features, labels = load_iris(return_X_y=True)
    return {
        "v1": LogisticRegression(max_iter=1000).fit(features, labels),
        "v2": DecisionTreeClassifier(max_depth=1, random_state=0).fit(features, labels),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write v1/model.joblib and v2/model.joblib into the output folder."""
    parser = argparse.ArgumentParser(description="Train the two classifiers of example 07.")
    parser.add_argument("--out", type=Path, default=HERE / "model", help="output folder")
    args = parser.parse_args(argv)
    for version, model in train().items():
        folder = args.out / version
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, folder / "model.joblib")
        print(f"wrote {folder / 'model.joblib'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
