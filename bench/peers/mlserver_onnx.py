"""MLServer peer for ONNX: MLServer has no ONNX runtime package, so this is the small
custom ``MLModel`` a user would write, in the style of mlserver-sklearn.

Copied next to model-settings.json (MLServer puts that folder on the import path) and
loaded as ``mlserver_onnx.OnnxModel`` inside ``bench/.venvs/mlserver``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, NumpyRequestCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxModel(MLModel):  # type: ignore[misc]
    """onnxruntime behind MLServer's V2 types."""

    async def load(self) -> bool:
        """Open the session on the model URI from model-settings.json."""
        uri = await get_model_uri(self._settings)
        self._session: Any = ort.InferenceSession(uri, providers=["CPUExecutionProvider"])
        self._input: str = self._session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Decode the request to numpy, run, encode one output."""
        decoded = self.decode_request(payload, default_codec=NumpyRequestCodec)
        result = self._session.run(None, {self._input: np.asarray(decoded, dtype=np.float32)})[0]
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(name="predict", payload=result)],
        )
