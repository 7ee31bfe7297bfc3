"""A custom Python handler: ``handler.py`` in the model directory with a ``Handler`` class.

The class needs ``predict(data)``; it may define ``load(model_dir)``,
``preprocess(feed) -> data`` and ``postprocess(result) -> outputs``, plus ``inputs`` /
``outputs`` (lists of ``{"name", "datatype", "shape"}``) for metadata and validation and
``batchable`` (default True) to opt out of batching. ``preprocess`` gets the request's
inputs as ``{name: numpy array}``; ``postprocess`` (or ``predict`` when there is none)
returns an array (``output-0``) or a ``{name: array}`` mapping. Exceptions are logged
with the request id and answered with a generic message (ValueError 400, anything else
500); to give the client a reason, raise ``kubeserve_runtime.errors.InvalidInput``.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from kubeserve_runtime.errors import ModelLoadError
from kubeserve_runtime.models.base import Feed, Model
from kubeserve_runtime.schema import TensorSpec

HANDLER_FILE = "handler.py"
HANDLER_CLASS = "Handler"


def _specs(raw: Any, what: str) -> list[TensorSpec]:
    """Return TensorSpecs from a handler's ``inputs``/``outputs`` attribute."""
    if raw is None:
        return []
    try:
        return [TensorSpec(str(d["name"]), str(d["datatype"]), tuple(d["shape"])) for d in raw]
    except (KeyError, TypeError) as exc:
        raise ModelLoadError(
            f"Handler.{what} must be a list of {{name, datatype, shape}}: {exc}"
        ) from exc


class CustomModel(Model):
    """Adapts a user ``Handler`` class to the Model interface."""

    platform = "custom"
    positional = False

    def load(self) -> None:
        """Import handler.py, instantiate Handler and call its ``load``."""
        path = self.model_dir / HANDLER_FILE
        spec = importlib.util.spec_from_file_location("kubeserve_user_handler", path)
        if spec is None or spec.loader is None:
            raise ModelLoadError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(self.model_dir))
        spec.loader.exec_module(module)
        cls = getattr(module, HANDLER_CLASS, None)
        if cls is None or not callable(getattr(cls, "predict", None)):
            raise ModelLoadError(f"{path} must define a class {HANDLER_CLASS} with predict()")
        self._handler: Any = cls()
        if callable(getattr(self._handler, "load", None)):
            self._handler.load(self.model_dir)
        self.inputs = _specs(getattr(self._handler, "inputs", None), "inputs")
        self.outputs = _specs(getattr(self._handler, "outputs", None), "outputs")
        self.batchable = bool(getattr(self._handler, "batchable", True))
        self._pre = getattr(self._handler, "preprocess", None)
        self._post = getattr(self._handler, "postprocess", None)

    def predict(self, feed: Feed) -> Feed:
        """Run preprocess -> predict -> postprocess and normalise the outputs."""
        data: Any = self._pre(feed) if self._pre else feed
        result: Any = self._handler.predict(data)
        if self._post:
            result = self._post(result)
        if isinstance(result, Mapping):
            return {str(k): np.asarray(v) for k, v in result.items()}
        return {"output-0": np.asarray(result)}
