"""Train this example's model: a scikit-learn iris classifier saved with joblib.

Usage: ``python examples/01-sklearn-iris/make_model.py [--out DIR]`` (default: ``model/``
next to this file). The runtime detects the format from ``model.joblib``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent


def train() -> LogisticRegression:
    """Fit a logistic regression on the 150 iris flowers (4 features, 3 classes)."""
    features, labels = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000).fit(features, labels)


def main(argv: Sequence[str] | None = None) -> int:
    """Write model.joblib into the output folder."""
    parser = argparse.ArgumentParser(description="Train the iris classifier of example 01.")
    parser.add_argument("--out", type=Path, default=HERE / "model", help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "model.joblib"
    joblib.dump(train(), path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
