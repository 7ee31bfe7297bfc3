"""LightGBM boosters saved as text (``model.txt``, ``.lgb``, or a text ``model.bst``)."""

from __future__ import annotations

from typing import Any

from kubeserve_runtime.errors import MissingExtraError
from kubeserve_runtime.models.base import Feed, Model, find_file, first
from kubeserve_runtime.schema import TensorSpec

SUFFIXES = (".txt", ".lgb", ".bst")


class LightGBMModel(Model):
    """A lightgbm.Booster."""

    platform = "lightgbm"

    def load(self) -> None:
        """Load the booster and describe its input."""
        try:
            import lightgbm
        except ImportError as exc:  # pragma: no cover - depends on the image's extras
            raise MissingExtraError("lightgbm", "lightgbm", "lightgbm") from exc
        path = find_file(self.model_dir, SUFFIXES)
        self._booster: Any = lightgbm.Booster(model_file=str(path))
        self.inputs = [TensorSpec("input-0", "FP64", (-1, int(self._booster.num_feature())))]
        self.outputs = [TensorSpec("output-0", "FP64", (-1,))]

    def predict(self, feed: Feed) -> Feed:
        """Return the booster's predictions (probabilities for classifiers)."""
        return {"output-0": self._booster.predict(first(feed), num_threads=1)}
