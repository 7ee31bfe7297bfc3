"""Train this example's two model versions: v1 (logistic regression) and v2 (gradient boosting).

Usage: ``python examples/04-progressive/make_model.py [--out DIR]`` writes
``DIR/v1/model.joblib`` and ``DIR/v2/model.joblib`` (default DIR: ``model/`` next to this
file). The InferenceService starts on v1; switching storageUri to v2 starts the
progressive canary.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import joblib
from sklearn.base import ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent


def train() -> dict[str, ClassifierMixin]:
    """Fit both versions on the iris flowers."""
    features, labels = load_iris(return_X_y=True)
    return {
        "v1": LogisticRegression(max_iter=1000).fit(features, labels),
        "v2": GradientBoostingClassifier(n_estimators=30, random_state=0).fit(features, labels),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write v1/model.joblib and v2/model.joblib into the output folder."""
    parser = argparse.ArgumentParser(description="Train the two iris versions of example 04.")
    parser.add_argument("--out", type=Path, default=HERE / "model", help="output folder")
    args = parser.parse_args(argv)
    for version, estimator in train().items():
        folder = args.out / version
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(estimator, folder / "model.joblib")
        print(f"wrote {folder / 'model.joblib'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
