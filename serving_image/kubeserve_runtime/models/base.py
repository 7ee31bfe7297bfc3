"""The interface every model format implements.

A model takes a feed (input name -> numpy array, batch on axis 0) and returns its
outputs the same way. ``predict`` runs in an inference thread, never on the event loop,
and must be safe to call from several threads (onnxruntime, scikit-learn, XGBoost and
LightGBM predictors are). Models whose inputs have no names (scikit-learn, XGBoost,
LightGBM, TorchScript) are ``positional``: the single request input feeds them whatever
its name, and metadata calls it ``input-0``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kubeserve_runtime.schema import TensorSpec

Feed = dict[str, np.ndarray[Any, Any]]


class Model(ABC):
    """A loaded model: metadata plus a thread-safe ``predict``."""

    platform: ClassVar[str]
    positional: ClassVar[bool] = True
    batchable: bool = True

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []

    @abstractmethod
    def load(self) -> None:
        """Load the model from ``model_dir`` and fill ``inputs``/``outputs``."""

    @abstractmethod
    def predict(self, feed: Feed) -> Feed:
        """Return the outputs for a (possibly batched) feed."""


def first(feed: Feed) -> np.ndarray[Any, Any]:
    """Return the single array of a positional model's feed."""
    return next(iter(feed.values()))


def find_file(model_dir: Path, suffixes: tuple[str, ...]) -> Path:
    """Return the one model file in ``model_dir`` with one of ``suffixes``."""
    if model_dir.is_file():
        return model_dir
    found = sorted(p for p in model_dir.iterdir() if p.is_file() and p.suffix in suffixes)
    if not found:
        raise FileNotFoundError(
            f"no model file ({', '.join('*' + s for s in suffixes)}) in {model_dir}"
        )
    if len(found) > 1:
        named = [p for p in found if p.stem == "model"]
        if len(named) == 1:
            return named[0]
        raise FileNotFoundError(
            f"several model files in {model_dir}: {', '.join(p.name for p in found)}; "
            "keep one, or name it model.<ext>"
        )
    return found[0]
