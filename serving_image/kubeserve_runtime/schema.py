"""Input validation: the model's own metadata plus the optional user ``inputSchema``.

The inputSchema (``KUBESERVE_INPUT_SCHEMA``, the CRD's ``spec.predictor.inputSchema``)
is JSON: ``{"inputs": [{"name", "datatype", "shape", "min"?, "max"?, "allowNaN"?}]}``
with ``-1`` for any size in a shape. Every check raises InvalidInput naming the input,
so the client sees a 400 that says which field is wrong and why. Checks are vectorised
numpy reductions; range and NaN checks run only when the schema asks for them.
Numeric data goes to the model's datatype through ``datatypes.cast``, which refuses any
value the cast would change (FP64 300.7 for an INT8 input is a 400, not 44).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kubeserve_runtime.contract import Datatype
from kubeserve_runtime.datatypes import cast, is_float, is_numeric
from kubeserve_runtime.errors import InvalidInput
from kubeserve_runtime.payloads import Tensor


class InputSpec(BaseModel):
    """One input of the inputSchema."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    datatype: Datatype
    shape: list[int] | None = None
    min: float | None = None
    max: float | None = None
    allow_nan: bool = Field(default=False, alias="allowNaN")

    @model_validator(mode="after")
    def _check(self) -> Self:
        """Refuse impossible specs: min above max, dims below -1."""
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"input {self.name!r}: min {self.min} is above max {self.max}")
        if self.shape is not None and any(d < -1 for d in self.shape):
            raise ValueError(f"input {self.name!r}: shape dims must be >= -1 (-1 = any)")
        return self


class InputSchema(BaseModel):
    """The user's inputSchema: the inputs a request must carry."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[InputSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        """Refuse duplicate input names."""
        names = [i.name for i in self.inputs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate input names: {', '.join(dupes)}")
        return self


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A model's declared input or output: name, datatype and shape (-1 = any)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_metadata(self) -> dict[str, Any]:
        """Return the OIP metadata dict for this tensor."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def shape_matches(actual: Sequence[int], expected: Sequence[int]) -> bool:
    """Return whether a shape fits an expected one where -1 matches any size."""
    return len(actual) == len(expected) and all(
        e == -1 or a == e for a, e in zip(actual, expected, strict=True)
    )


class InputValidator:
    """Validates and normalises request tensors against the model and the inputSchema."""

    def __init__(
        self,
        model_inputs: Sequence[TensorSpec],
        schema: InputSchema | None,
        positional: bool,
    ) -> None:
        self._model = {spec.name: spec for spec in model_inputs}
        self._order = [spec.name for spec in model_inputs]
        self._schema = {spec.name: spec for spec in schema.inputs} if schema else {}
        self._positional = positional and len(model_inputs) == 1

    def validate(self, tensors: list[Tensor]) -> dict[str, np.ndarray[Any, Any]]:
        """Return the model's feed (name -> array) or raise InvalidInput naming the field."""
        if not tensors:
            raise InvalidInput("the request has no inputs")
        if self._positional and len(tensors) > 1:
            raise InvalidInput(f"this model takes one input, the request has {len(tensors)}")
        feed: dict[str, np.ndarray[Any, Any]] = {}
        for tensor in tensors:
            if tensor.name in feed:
                raise InvalidInput(f"input {tensor.name!r} appears more than once")
            feed[tensor.name] = self._check(tensor)
        required = self._schema or ({} if self._positional else self._model)
        missing = [n for n in required if n not in feed]
        if missing:
            raise InvalidInput(f"missing input(s): {', '.join(repr(n) for n in missing)}")
        return feed

    def _check(self, tensor: Tensor) -> np.ndarray[Any, Any]:
        """Check one tensor against the schema and the model; return the array to feed."""
        user = self._schema.get(tensor.name)
        model = self._model.get(tensor.name)
        if model is None and self._positional:
            model = self._model[self._order[0]]
        if user is None and (model is None or self._positional) and self._schema:
            known = ", ".join(repr(n) for n in self._schema)
            raise InvalidInput(f"unknown input {tensor.name!r}; the schema names {known}")
        if user is None and model is None and self._model:
            known = ", ".join(repr(n) for n in (self._schema or self._model))
            raise InvalidInput(f"unknown input {tensor.name!r}; this model takes {known}")
        data = tensor.data
        if user is not None:
            if tensor.datatype != user.datatype:
                raise InvalidInput(
                    f"input {tensor.name!r}: datatype {tensor.datatype} does not match "
                    f"the schema's {user.datatype}"
                )
            if user.shape is not None and not shape_matches(data.shape, user.shape):
                raise InvalidInput(
                    f"input {tensor.name!r}: shape {list(data.shape)} does not match "
                    f"the schema's {user.shape} (-1 = any)"
                )
            _check_values(tensor.name, tensor.datatype, data, user)
        if model is not None:
            if is_numeric(model.datatype) != is_numeric(tensor.datatype):
                raise InvalidInput(
                    f"input {tensor.name!r}: datatype {tensor.datatype} cannot feed the "
                    f"model's {model.datatype} input"
                )
            if model.shape and not shape_matches(data.shape, model.shape):
                raise InvalidInput(
                    f"input {tensor.name!r}: shape {list(data.shape)} does not match "
                    f"the model's {list(model.shape)} (-1 = any)"
                )
            if is_numeric(model.datatype):
                data = cast(tensor.name, data, model.datatype)
        return data


def _check_values(name: str, datatype: str, data: np.ndarray[Any, Any], spec: InputSpec) -> None:
    """Apply the schema's NaN and range rules to one numeric tensor."""
    if not is_numeric(datatype) or data.size == 0:
        return
    values = data
    if is_float(datatype):
        nan = np.isnan(data)
        if nan.any():
            if not spec.allow_nan:
                raise InvalidInput(f"input {name!r}: NaN is not allowed (allowNaN is false)")
            values = data[~nan]
    if values.size == 0 or (spec.min is None and spec.max is None):
        return
    low, high = values.min(), values.max()
    if spec.min is not None and low < spec.min:
        raise InvalidInput(f"input {name!r}: value {low} is below min {spec.min}")
    if spec.max is not None and high > spec.max:
        raise InvalidInput(f"input {name!r}: value {high} is above max {spec.max}")
