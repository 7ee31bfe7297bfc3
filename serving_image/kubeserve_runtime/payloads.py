"""Transport-neutral inference request and response objects.

REST (JSON or binary) and gRPC decode into these and encode out of them, so the data
plane never sees wire formats. Tensors hold a numpy array already shaped; ``BYTES``
tensors hold an object array of ``bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Parameters = dict[str, Any]
Array = np.ndarray[Any, Any]


@dataclass(slots=True)
class Tensor:
    """One named tensor with its OIP datatype."""

    name: str
    datatype: str
    data: Array
    parameters: Parameters = field(default_factory=dict)

    @property
    def shape(self) -> list[int]:
        """The tensor's shape as a list of ints."""
        return list(self.data.shape)


@dataclass(slots=True)
class RequestedOutput:
    """An output the client asked for, with its parameters (e.g. ``binary_data``)."""

    name: str
    parameters: Parameters = field(default_factory=dict)


@dataclass(slots=True)
class InferRequest:
    """A decoded inference request."""

    inputs: list[Tensor]
    id: str = ""
    parameters: Parameters = field(default_factory=dict)
    outputs: list[RequestedOutput] | None = None
    subject: str | None = None
    """The authenticated caller, when a transport knows one; payload logs carry it."""


@dataclass(slots=True)
class InferResponse:
    """The data plane's answer to an InferRequest."""

    model_name: str
    model_version: str | None
    id: str
    outputs: list[Tensor]
    parameters: Parameters = field(default_factory=dict)
