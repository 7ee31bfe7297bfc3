"""inputSchema: parsing rules in-process, and enforcement by a real server over tritonclient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient
from pydantic import ValidationError
from tritonclient.utils import InferenceServerException

from kubeserve_runtime.errors import InvalidInput
from kubeserve_runtime.payloads import Tensor
from kubeserve_runtime.schema import InputSchema, InputValidator, TensorSpec
from kubeserve_runtime.testing import RuntimeProcess

SCHEMA = {
    "inputs": [
        {"name": "features", "datatype": "FP32", "shape": [-1, 4], "min": 0, "max": 10},
    ]
}


def test_schema_refuses_impossible_specs() -> None:
    """min above max, duplicate names, bad dims and unknown keys are refused."""
    bad: list[tuple[dict[str, Any], str]] = [
        ({"inputs": [{"name": "a", "datatype": "FP32", "min": 2, "max": 1}]}, "min 2.0 is above"),
        (
            {"inputs": [{"name": "a", "datatype": "FP32"}, {"name": "a", "datatype": "FP32"}]},
            "duplicate input names: a",
        ),
        ({"inputs": [{"name": "a", "datatype": "FP32", "shape": [-2]}]}, "dims must be >= -1"),
        ({"inputs": [{"name": "a", "datatype": "FP99"}]}, "datatype"),
        ({"inputs": [{"name": "a", "datatype": "FP32", "colour": 1}]}, "colour"),
        ({"inputs": []}, "at least 1"),
    ]
    for doc, message in bad:
        with pytest.raises(ValidationError, match=message):
            InputSchema.model_validate(doc)


def _tensor(name: str, values: Any, datatype: str = "FP32") -> Tensor:
    """A tensor for the validator."""
    dtype = np.float32 if datatype == "FP32" else np.float64
    return Tensor(name, datatype, np.asarray(values, dtype=dtype))


def test_validator_checks_names_dtypes_shapes_nan_and_ranges() -> None:
    """Each violation is an InvalidInput naming the input; a good tensor passes cast."""
    schema = InputSchema.model_validate(SCHEMA)
    validator = InputValidator([TensorSpec("input-0", "FP64", (-1, 4))], schema, positional=True)
    feed = validator.validate([_tensor("features", [[1, 2, 3, 4]])])
    assert feed["features"].dtype == np.float64
    cases: list[tuple[Tensor, str]] = [
        (_tensor("other", [[1, 2, 3, 4]]), "unknown input 'other'; the schema names 'features'"),
        (_tensor("features", [[1, 2, 3, 4]], "FP64"), "datatype FP64 does not match the schema"),
        (_tensor("features", [[1, 2, 3]]), "shape [1, 3] does not match the schema's [-1, 4]"),
        (_tensor("features", [[1, np.nan, 3, 4]]), "NaN is not allowed"),
        (_tensor("features", [[1, 2, 3, 11]]), "above max 10.0"),
        (_tensor("features", [[-1, 2, 3, 4]]), "below min 0.0"),
    ]
    for tensor, message in cases:
        with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
            validator.validate([tensor])
    allowing = InputSchema.model_validate(
        {"inputs": [{"name": "f", "datatype": "FP32", "allowNaN": True, "max": 1}]}
    )
    ok = InputValidator([], allowing, positional=False).validate([_tensor("f", [np.nan, 0.5])])
    assert np.isnan(ok["f"][0])


@pytest.fixture(scope="module")
def schema_server(sklearn_dir: Path) -> Iterator[RuntimeProcess]:
    """The iris model served with an inputSchema."""
    args = ("--input-schema", orjson.dumps(SCHEMA).decode())
    with RuntimeProcess(sklearn_dir, "iris", *args, grpc=False) as server:
        yield server


def test_server_enforces_schema_over_binary_tritonclient(schema_server: RuntimeProcess) -> None:
    """NaN, out-of-range values, wrong names and dtypes are 400s; valid data is served."""
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{schema_server.http_port}")
    try:
        meta = client.get_model_metadata("iris")
        assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]

        def infer(name: str, rows: np.ndarray[Any, Any], datatype: str = "FP32") -> Any:
            tensor = httpclient.InferInput(name, list(rows.shape), datatype)
            tensor.set_data_from_numpy(rows, binary_data=True)
            return client.infer("iris", [tensor])

        good = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
        assert infer("features", good).as_numpy("output-0").tolist() == [0]
        nan = good.copy()
        nan[0, 1] = np.nan
        cases: list[tuple[str, np.ndarray[Any, Any], str, str]] = [
            ("features", nan, "FP32", "input 'features': NaN is not allowed"),
            ("features", good * 3, "FP32", "above max 10.0"),
            ("feat", good, "FP32", "unknown input 'feat'"),
            ("features", good.astype(np.float64), "FP64", "does not match the schema's FP32"),
        ]
        for name, rows, datatype, message in cases:
            with pytest.raises(InferenceServerException, match=message) as info:
                infer(name, rows, datatype)
            assert info.value.status() == "400"
        assert infer("features", good).as_numpy("output-0").tolist() == [0]
    finally:
        client.close()
