"""TorchScript modules (``model.pt``, ``.pth``, ``.torchscript``) run on CPU.

Request inputs feed the module positionally, in request order (FP64 is narrowed
to FP32, torch's default, so V1 JSON numbers work); a tensor or a tuple of
tensors comes back as ``output-0``, ``output-1``, ...
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from kubeserve_runtime.errors import MissingExtraError
from kubeserve_runtime.models.base import Feed, Model, find_file

SUFFIXES = (".pt", ".pth", ".torchscript")


def _float32(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Return a contiguous array, FP64 narrowed to torch's default FP32."""
    if array.dtype == np.float64:
        return np.ascontiguousarray(array, dtype=np.float32)
    return np.ascontiguousarray(array)


class TorchScriptModel(Model):
    """A torch.jit ScriptModule in eval mode."""

    platform = "pytorch_torchscript"
    positional = False

    def load(self) -> None:
        """Load the scripted module onto the CPU."""
        try:
            torch: Any = importlib.import_module("torch")
        except ImportError as exc:
            raise MissingExtraError("pytorch", "torch", "torch") from exc
        self._torch = torch
        path = find_file(self.model_dir, SUFFIXES)
        self._module: Any = torch.jit.load(str(path), map_location="cpu")
        self._module.eval()
        self.inputs = []
        self.outputs = []

    def predict(self, feed: Feed) -> Feed:
        """Run the module on the feed's arrays in order."""
        torch = self._torch
        with torch.inference_mode():
            args = [torch.from_numpy(_float32(a)) for a in feed.values()]
            result = self._module(*args)
        values = result if isinstance(result, tuple | list) else (result,)
        return {f"output-{i}": v.detach().cpu().numpy() for i, v in enumerate(values)}
