"""Train this example's two contenders and print their held-out accuracy.

Usage: ``python examples/08-ab-experiment/make_model.py [--out DIR]`` writes
``DIR/a/model.joblib`` (the main predictor: a one-split decision stump) and
``DIR/b/model.joblib`` (variant ``b``: a random forest); default DIR: ``model/`` next to
this file. The printed accuracies say which arm the experiment should find better.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import joblib
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

HERE = Path(__file__).resolve().parent


def main(argv: Sequence[str] | None = None) -> int:
    """Fit both models on 70% of the wine data, score them on the rest, save them."""
    parser = argparse.ArgumentParser(description="Train the A/B experiment models (example 08).")
    parser.add_argument("--out", type=Path, default=HERE / "model", help="output folder")
    args = parser.parse_args(argv)
    features, labels = load_wine(return_X_y=True)
    fit_x, test_x, fit_y, test_y = train_test_split(features, labels, test_size=0.3, random_state=0)
    contenders = {
        "a": DecisionTreeClassifier(max_depth=1, random_state=0),
        "b": RandomForestClassifier(n_estimators=50, random_state=0),
    }
    for arm, estimator in contenders.items():
        estimator.fit(fit_x, fit_y)
        folder = args.out / arm
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(estimator, folder / "model.joblib")
        print(f"{arm}: held-out accuracy {estimator.score(test_x, test_y):.3f} -> {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
