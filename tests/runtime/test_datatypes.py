"""The datatype rules in process: lossless casts, typed JSON values, shape limits.

Every transport goes through these functions, so each rule is pinned here once, with
the values the hardening issue reported as silently coerced.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from kubeserve_runtime.codec import check_shape, contents_to_array, json_to_array
from kubeserve_runtime.datatypes import cast, from_json
from kubeserve_runtime.errors import InvalidInput

Array = np.ndarray[Any, Any]

REFUSED_JSON: list[tuple[str, Any, str | None, str]] = [
    ("fractions for INT64", [1.9, -2.7], "INT64", "1.9 is not a whole number"),
    ("300.7 for INT8", [300.7, 1e10], "INT8", "300.7 is outside -128..127"),
    ("300 for INT8", [300], "INT8", "300 is outside -128..127"),
    ("negative for UINT8", [-1], "UINT8", "-1 is outside 0..255"),
    ("2**63 for INT64", [2**63], "INT64", "is outside"),
    ("2**70 for INT64", [2**70], "INT64", "1180591620717411303424 is outside"),
    ("'nan' string for FP32", ["nan", "inf"], "FP32", "'nan' is not a number"),
    ("numeric string for FP64", ["1.5"], "FP64", "'1.5' is not a number"),
    ("null for FP32", [None, 1.0], "FP32", "null is not a number"),
    ("null for INT32", [[1, None]], "INT32", "null is not a number"),
    ("1e39 for FP32", [1e39], "FP32", "1e+39 is outside"),
    ("1e6 for FP16", [1e6], "FP16", "1000000.0 is outside ±65504"),
    ("65520 for FP16", [65520.0], "FP16", "outside"),
    ("2 for BOOL", [2], "BOOL", "2 is not true or false"),
    ("1 for BOOL", [True, 1], "BOOL", "1 is not true or false"),
    ("'yes' for BOOL", ["yes"], "BOOL", "'yes' is not true or false"),
    ("null for BOOL", [None], "BOOL", "null is not true or false"),
    ("true among floats", [True, 1.5], "FP32", "true/false among numbers"),
    ("false among ints", [[0, False]], "INT64", "true/false among numbers"),
    ("only booleans for FP32", [True, False], "FP32", "true/false is not a number"),
    ("an object for FP32", [{"a": 1}], "FP32", "an object is not a number"),
    ("uneven rows", [[1, 2], [3]], "FP32", "not a rectangular array"),
    ("a number for BYTES", ["a", 1], "BYTES", "1 is not a string"),
    ("null for BYTES", [None], "BYTES", "null is not a string"),
    ("null without a datatype", [None], None, "null is not a number"),
    ("booleans among numbers without a datatype", [1, True], None, "true/false among"),
]


@pytest.mark.parametrize(
    ("data", "datatype", "message"),
    [case[1:] for case in REFUSED_JSON],
    ids=[case[0] for case in REFUSED_JSON],
)
def test_json_values_that_do_not_fit_are_refused_naming_the_input(
    data: Any, datatype: str | None, message: str
) -> None:
    """Each is an InvalidInput naming the input and the offending value."""
    with pytest.raises(InvalidInput) as caught:
        from_json("x", data, datatype)
    assert caught.value.message.startswith("input 'x': data is not")
    assert message in caught.value.message


ACCEPTED_JSON: list[tuple[str, Any, str | None, Any, str]] = [
    ("ints for FP32", [1, 2], "FP32", [1.0, 2.0], "float32"),
    ("whole floats for INT64", [[1.0, -2.0]], "INT64", [[1, -2]], "int64"),
    ("big ints beside a decimal", [1.0, 2**62 + 1], "INT64", [1, 2**62 + 1], "int64"),
    ("uint64 top", [2**64 - 1], "UINT64", [2**64 - 1], "uint64"),
    ("0.1 rounds for FP32", [0.1], "FP32", [float(np.float32(0.1))], "float32"),
    ("65504 for FP16", [65504.0], "FP16", [65504.0], "float16"),
    ("booleans for BOOL", [[True, False]], "BOOL", [[True, False]], "bool"),
    ("empty for BOOL", [], "BOOL", [], "bool"),
    ("strings for BYTES", ["a", "é"], "BYTES", [b"a", "é".encode()], "object"),
    ("ints without a datatype", [1, 2], None, [1, 2], "int64"),
    ("floats without a datatype", [1, 2.5], None, [1.0, 2.5], "float64"),
    ("strings without a datatype", ["a"], None, [b"a"], "object"),
]


@pytest.mark.parametrize(
    ("data", "datatype", "expected", "dtype"),
    [case[1:] for case in ACCEPTED_JSON],
    ids=[case[0] for case in ACCEPTED_JSON],
)
def test_json_values_that_fit_keep_their_value(
    data: Any, datatype: str | None, expected: Any, dtype: str
) -> None:
    """Values the datatype can hold come through exactly (floats rounded, as floats are)."""
    array = from_json("x", data, datatype)
    assert array.dtype == np.dtype(dtype)
    assert array.tolist() == expected


def test_booleans_are_only_looked_for_when_the_text_may_hold_them() -> None:
    """``booleans=False`` is the caller's word that no JSON true/false is present."""
    with pytest.raises(InvalidInput, match="true/false among numbers"):
        json_to_array("x", [True, 2.5], "FP32", [2])
    assert json_to_array("x", [1.0, 2.5], "FP32", [2], booleans=False).tolist() == [1.0, 2.5]


REFUSED_CASTS: list[tuple[str, Array, str, str]] = [
    ("FP64 300.7 to INT8", np.array([300.7, 1e10]), "INT8", "300.7 is outside -128..127"),
    ("FP64 2.5 to INT8", np.array([1.0, 2.5]), "INT8", "2.5 is not a whole number"),
    ("NaN to INT32", np.array([np.nan]), "INT32", "nan is not a finite number"),
    ("inf to INT64", np.array([np.inf]), "INT64", "inf is not a finite number"),
    ("2**63 to INT64", np.array([2.0**63]), "INT64", "is outside"),
    ("FP64 1e39 to FP32", np.array([np.nan, 1e39]), "FP32", "1e+39 is outside"),
    ("INT64 70000 to FP16", np.array([70000]), "FP16", "70000 is outside ±65504"),
    ("INT64 min to FP16", np.array([-(2**63)]), "FP16", "is outside ±65504"),
    ("UINT64 top to INT64", np.array([2**64 - 1], dtype=np.uint64), "INT64", "is outside"),
    ("INT64 -1 to UINT64", np.array([-1]), "UINT64", "-1 is outside 0.."),
    ("INT64 2 to BOOL", np.array([2, 0]), "BOOL", "2 is neither 0 nor 1"),
    ("FP32 0.5 to BOOL", np.array([0.5], dtype=np.float32), "BOOL", "0.5 is neither"),
    ("BYTES to FP32", np.array([b"a"], dtype=object), "FP32", "cannot become FP32"),
]


@pytest.mark.parametrize(
    ("array", "datatype", "message"),
    [case[1:] for case in REFUSED_CASTS],
    ids=[case[0] for case in REFUSED_CASTS],
)
def test_lossy_casts_are_refused(array: Array, datatype: str, message: str) -> None:
    """A cast that would change a value raises instead of wrapping, truncating or inf."""
    with pytest.raises(InvalidInput) as caught:
        cast("x", array, datatype)
    assert caught.value.message.startswith("input 'x':")
    assert message in caught.value.message


def test_lossless_casts_keep_values_and_nan_stays_nan() -> None:
    """Widening is free; whole floats become ints; NaN and inf in floats stay as sent."""
    assert cast("x", np.array([1, 2], dtype=np.int8), "FP32").tolist() == [1.0, 2.0]
    assert cast("x", np.array([1.0, -128.0]), "INT8").tolist() == [1, -128]
    assert cast("x", np.array([1, 0]), "BOOL").tolist() == [True, False]
    assert cast("x", np.array([True]), "FP64").tolist() == [1.0]
    assert cast("x", np.array([65519.0]), "FP16").tolist() == [65504.0]
    narrowed = cast("x", np.array([np.nan, np.inf, -np.inf, 1e-50]), "FP32")
    assert narrowed.dtype == np.float32
    assert np.isnan(narrowed[0])
    assert narrowed[1:].tolist() == [np.inf, -np.inf, 0.0]
    same = np.array([1.0])
    assert cast("x", same, "FP64") is same


def test_typed_grpc_contents_are_cast_by_the_same_rules() -> None:
    """INT8 travels in int_contents and FP16 in fp32_contents: out-of-range is refused."""
    assert contents_to_array("x", [1, -2], "INT8", [2]).dtype == np.int8
    with pytest.raises(InvalidInput, match=r"300 is outside -128\.\.127"):
        contents_to_array("x", [300], "INT8", [1])
    with pytest.raises(InvalidInput, match="is outside ±65504"):
        contents_to_array("x", [1e6], "FP16", [1])
    with pytest.raises(InvalidInput, match="1 values do not fit shape"):
        contents_to_array("x", [1], "INT32", [2**32, 2**32, 0])
    assert contents_to_array("x", [b"a"], "BYTES", [1]).tolist() == [b"a"]


SHAPES: list[tuple[str, Any, str]] = [
    ("a dim beyond 2**63", [0, 2**70], "is too large"),
    ("a product beyond 2**60", [2**32, 2**32], "is too large"),
    ("huge dims beside a zero", [0, 2**40, 2**40], "is too large"),
    ("65 dimensions", [1] * 65, "at most 64"),
    ("a negative dim", [1, -4], "non-negative integers"),
    ("a float dim", [1.5], "non-negative integers"),
    ("a boolean dim", [True], "non-negative integers"),
    ("not a list", "4", "non-negative integers"),
]


@pytest.mark.parametrize(
    ("shape", "message"), [case[1:] for case in SHAPES], ids=[case[0] for case in SHAPES]
)
def test_shapes_numpy_cannot_hold_are_refused(shape: Any, message: str) -> None:
    """Refused before any array is made, so numpy never raises its own error (a 500)."""
    with pytest.raises(InvalidInput, match=message):
        check_shape("x", shape)


def test_empty_shapes_that_numpy_can_hold_pass() -> None:
    """Zero-size tensors are fine when the other dims are sane."""
    assert check_shape("x", [0, 4]) == [0, 4]
    assert json_to_array("x", [], "FP32", [0, 4]).shape == (0, 4)
