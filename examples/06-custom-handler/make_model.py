"""Build this example's model folder: a trained classifier plus the custom handler.

Usage: ``python examples/06-custom-handler/make_model.py [--out DIR]`` writes
``model.joblib``, ``classes.json`` and a copy of ``handler.py`` into DIR (default:
``model/`` next to this file). The runtime sees ``handler.py`` and loads the folder as
a custom model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent


def main(argv: Sequence[str] | None = None) -> int:
    """Write model.joblib, classes.json and handler.py into the output folder."""
    parser = argparse.ArgumentParser(description="Build the custom-handler model of example 06.")
    parser.add_argument("--out", type=Path, default=HERE / "model", help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    iris = load_iris()
    estimator = LogisticRegression(max_iter=1000).fit(iris.data, iris.target)
    joblib.dump(estimator, args.out / "model.joblib")
    (args.out / "classes.json").write_text(json.dumps([str(n) for n in iris.target_names]))
    shutil.copyfile(HERE / "handler.py", args.out / "handler.py")
    print(f"wrote model.joblib, classes.json and handler.py into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
