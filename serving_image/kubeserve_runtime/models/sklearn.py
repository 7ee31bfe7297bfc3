"""scikit-learn estimators saved with joblib (``model.joblib``, ``.pkl``, ``.pickle``).

``predict`` calls the estimator's ``predict``; the output datatype follows the
estimator's classes (classifiers) or is FP64 (regressors).
"""

from __future__ import annotations

from typing import Any

from kubeserve_runtime.datatypes import datatype_of
from kubeserve_runtime.errors import MissingExtraError
from kubeserve_runtime.models.base import Feed, Model, find_file, first
from kubeserve_runtime.schema import TensorSpec

SUFFIXES = (".joblib", ".pkl", ".pickle")


class SklearnModel(Model):
    """A joblib-pickled scikit-learn estimator (or pipeline)."""

    platform = "sklearn"

    def load(self) -> None:
        """Unpickle the estimator and describe its input."""
        try:
            import joblib
        except ImportError as exc:  # pragma: no cover - depends on the image's extras
            raise MissingExtraError("sklearn", "scikit-learn and joblib", "sklearn") from exc
        self._estimator: Any = joblib.load(find_file(self.model_dir, SUFFIXES))
        features = int(getattr(self._estimator, "n_features_in_", -1))
        self.inputs = [TensorSpec("input-0", "FP64", (-1, features))]
        classes = getattr(self._estimator, "classes_", None)
        out = "FP64" if classes is None else datatype_of(classes)
        self.outputs = [TensorSpec("output-0", out, (-1,))]

    def predict(self, feed: Feed) -> Feed:
        """Return the estimator's predictions."""
        return {"output-0": self._estimator.predict(first(feed))}
