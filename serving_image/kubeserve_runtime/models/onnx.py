"""ONNX models run by onnxruntime on CPU (``model.onnx``).

Inputs and outputs keep the graph's own names; dynamic dims become -1. Sessions are
thread-safe, and ``run`` releases the GIL, so inference threads really run in parallel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kubeserve_runtime.errors import MissingExtraError
from kubeserve_runtime.models.base import Feed, Model, find_file
from kubeserve_runtime.schema import TensorSpec

_DATATYPES = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(float16)": "FP16",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}


def _spec(node: Any) -> TensorSpec:
    """Return the TensorSpec of an onnxruntime NodeArg."""
    shape = tuple(d if isinstance(d, int) else -1 for d in (node.shape or []))
    return TensorSpec(node.name, _DATATYPES.get(node.type, "BYTES"), shape)


class OnnxModel(Model):
    """An onnxruntime InferenceSession."""

    platform = "onnxruntime_onnx"
    positional = False

    def load(self) -> None:
        """Create the session and read the graph's inputs and outputs."""
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - depends on the image's extras
            raise MissingExtraError("onnx", "onnxruntime", "onnx") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        path = find_file(self.model_dir, (".onnx",))
        self._session: Any = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs = [_spec(n) for n in self._session.get_inputs()]
        self.outputs = [_spec(n) for n in self._session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]

    def predict(self, feed: Feed) -> Feed:
        """Run the session on the feed."""
        results = self._session.run(self._output_names, feed)
        return {
            name: value if isinstance(value, np.ndarray) else np.asarray(value)
            for name, value in zip(self._output_names, results, strict=True)
        }
