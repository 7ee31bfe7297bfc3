"""XGBoost boosters (``model.ubj``, ``model.json``, ``.xgb``, or a binary ``model.bst``).

``inplace_predict`` avoids building a DMatrix and releases the GIL.
"""

from __future__ import annotations

from typing import Any

from kubeserve_runtime.errors import MissingExtraError
from kubeserve_runtime.models.base import Feed, Model, find_file, first
from kubeserve_runtime.schema import TensorSpec

SUFFIXES = (".ubj", ".json", ".xgb", ".bst")


class XGBoostModel(Model):
    """An xgboost.Booster."""

    platform = "xgboost"

    def load(self) -> None:
        """Load the booster and describe its input."""
        try:
            import xgboost
        except ImportError as exc:  # pragma: no cover - depends on the image's extras
            raise MissingExtraError("xgboost", "xgboost", "xgboost") from exc
        path = find_file(self.model_dir, SUFFIXES)
        self._booster: Any = xgboost.Booster(model_file=str(path))
        self._booster.set_param({"nthread": 1})
        self.inputs = [TensorSpec("input-0", "FP32", (-1, int(self._booster.num_features())))]
        self.outputs = [TensorSpec("output-0", "FP32", (-1,))]

    def predict(self, feed: Feed) -> Feed:
        """Return the booster's predictions (probabilities for classifiers)."""
        return {"output-0": self._booster.inplace_predict(first(feed))}
