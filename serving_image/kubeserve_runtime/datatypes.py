"""Open Inference Protocol tensor datatypes, their numpy counterparts, and the one set of
rules for putting values into them. Every transport (V1, V2 JSON, V2 binary, gRPC) and
the input validator go through ``cast`` and ``from_json``.

Limits: ``BF16`` has no numpy dtype and is refused rather than reinterpreted. ``BYTES``
tensors are numpy ``object`` arrays of ``bytes``. JSON text never carries NaN or
infinity (orjson refuses ``NaN`` literals and numbers that overflow a double), so those
values arrive only in raw binary data or typed gRPC floats, where the client sent them
on purpose; the inputSchema's ``allowNaN`` decides about them.

The rules, each a 400 naming the input when broken:

- A conversion never changes a value silently. Integer datatypes take whole numbers
  inside their range (1.9 or 300 for INT8 is refused, not truncated or wrapped). Float
  datatypes round to the nearest representable value, as any float input does, but a
  finite value must stay finite (1e39 for FP32 or 70000 for FP16 is refused, not
  turned into infinity). BOOL takes 0 and 1 from a numeric datatype.
- JSON values are typed: numeric datatypes take JSON numbers, BOOL takes ``true`` and
  ``false``, BYTES takes strings. ``null``, strings for numbers (``"nan"``, ``"1.5"``)
  and booleans among numbers are refused.

Checks are numpy operations over whole arrays. Python looks at single elements only
for BYTES, on the error path to name the offending value, for JSON whose values numpy
could not type as one kind (nulls, integers beyond 64 bits), and to find JSON booleans
among numbers, which callers skip when the JSON text holds no ``true``/``false``.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np

from kubeserve_runtime import contract
from kubeserve_runtime.errors import InvalidInput

Array = np.ndarray[Any, Any]

NUMPY_BY_DATATYPE: Final[dict[str, np.dtype[Any]]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

DATATYPES: Final = contract.DATATYPES
"""Every datatype a tensor may declare; all but ``BF16`` (no numpy dtype) have an array form."""

_DATATYPE_BY_NUMPY: Final[dict[np.dtype[Any], str]] = {
    dtype: name for name, dtype in NUMPY_BY_DATATYPE.items()
}
_INTEGER: Final = frozenset(n for n, d in NUMPY_BY_DATATYPE.items() if d.kind in "iu")
_FLOAT_TYPES: Final = frozenset(n for n, d in NUMPY_BY_DATATYPE.items() if d.kind == "f")
_NUMERIC: Final = [d for d in NUMPY_BY_DATATYPE.values() if d.kind != "O"]
# np.can_cast costs microseconds per call; the answers for the datatypes never change.
_SAFE: Final[frozenset[tuple[np.dtype[Any], np.dtype[Any]]]] = frozenset(
    (s, t) for s in _NUMERIC for t in _NUMERIC if np.can_cast(s, t, "safe")
)
# JSON kinds numpy infers for typed data, and the datatype V1 gives each when the
# model declares none.
_INFERRED: Final = {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}
_JSON_TYPE_NAMES: Final = {
    type(None): "null",
    bool: "true/false",
    str: "a string",
    dict: "an object",
    list: "a list of uneven length",
}


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    """Return the numpy dtype for an OIP datatype, or raise InvalidInput."""
    try:
        return NUMPY_BY_DATATYPE[datatype]
    except KeyError:
        if datatype == "BF16":
            raise InvalidInput("datatype BF16 is not supported by this runtime") from None
        raise InvalidInput(
            f"unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}"
        ) from None


def datatype_of(array: Array) -> str:
    """Return the OIP datatype naming a numpy array's dtype (strings are BYTES)."""
    found = _DATATYPE_BY_NUMPY.get(array.dtype)
    if found is not None:
        return found
    if array.dtype.kind in "USO":
        return "BYTES"
    raise InvalidInput(f"numpy dtype {array.dtype} has no Open Inference Protocol datatype")


def is_numeric(datatype: str) -> bool:
    """Return whether a datatype holds numbers (everything but BYTES)."""
    return datatype != "BYTES"


def is_float(datatype: str) -> bool:
    """Return whether a datatype is floating point (the only kinds that hold NaN)."""
    return datatype in ("FP16", "FP32", "FP64", "BF16")


def as_bytes_array(array: Array) -> Array:
    """Return an object array of bytes for a str/bytes/object array."""
    if array.dtype == object:
        flat = [v if isinstance(v, bytes) else str(v).encode() for v in array.ravel()]
    else:
        flat = [v.encode() if isinstance(v, str) else bytes(v) for v in array.ravel().tolist()]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(array.shape)


def _invalid(name: str, datatype: str | None, why: str) -> InvalidInput:
    """Return the error for data that does not fit its datatype."""
    what = f"valid {datatype}" if datatype else "a valid tensor"
    return InvalidInput(f"input {name!r}: data is not {what}: {why}")


def _first(array: Array, bad: Array) -> Any:
    """Return the first value of ``array`` where ``bad`` is true (None if nowhere)."""
    found = np.flatnonzero(bad.ravel())
    return array.ravel()[int(found[0])].item() if found.size else None


def cast(name: str, array: Array, datatype: str) -> Array:
    """Return a numeric array as ``datatype``, refusing any value the cast would change.

    Widening casts (``np.can_cast(..., "safe")``) need no check. Otherwise: into an
    integer type, every value must be whole and inside the range; into a float type, no
    finite value may overflow to infinity; into BOOL, values must be 0 or 1.
    """
    target = numpy_dtype(datatype)
    source = array.dtype
    if source == target:
        return array
    if source.kind not in "biuf" or target.kind == "O":
        raise InvalidInput(f"input {name!r}: {source} data cannot become {datatype}")
    if (source, target) in _SAFE or array.size == 0:
        return array.astype(target)
    if target.kind == "b":
        zero_or_one = (array == 0) | (array == 1)
        if not zero_or_one.all():
            value = _first(array, ~zero_or_one)
            raise _invalid(name, datatype, f"{value} is neither 0 nor 1")
        return array.astype(target)
    if target.kind == "f":
        return _to_float(name, array, datatype, target)
    return _to_integer(name, array, datatype, target)


def _float_limit(dtype: np.dtype[Any]) -> float:
    """Return the magnitude from which values round to infinity in a float dtype.

    Halfway between the largest finite value and the next power of two; exactly
    representable in float64 (65520 for FP16).
    """
    info = np.finfo(dtype)
    return float((2 - 2.0 ** -(info.nmant + 1)) * 2.0 ** (info.maxexp - 1))


_FLOAT_LIMITS: Final = {d: _float_limit(d) for d in _NUMERIC if d.kind == "f"}
_FLOAT_LIMITS_SQUARED: Final = {d: limit * limit for d, limit in _FLOAT_LIMITS.items()}


def _to_float(name: str, array: Array, datatype: str, target: np.dtype[Any]) -> Array:
    """Cast to a float dtype if no finite value overflows (NaN and infinity stay).

    Integers overflow only FP16 (64-bit integers stay far below FP32's range). For
    floats, one dot product bounds every value at once: if the sum of squares is below
    limit², no value reaches the limit. Only when it is not (huge values, NaN,
    infinity) are the values looked at one by one. The bound is checked before the
    cast, which would warn on overflow.
    """
    limit = _FLOAT_LIMITS[target]
    if array.dtype.kind == "f":
        if not np.vdot(array, array) < _FLOAT_LIMITS_SQUARED[target]:
            overflow = np.isfinite(array) & ((array <= -limit) | (array >= limit))
            _refuse_overflow(name, array, datatype, overflow)
    elif target.itemsize < 4 and not (-limit < array.min() and array.max() < limit):
        _refuse_overflow(name, array, datatype, (array <= -limit) | (array >= limit))
    return array.astype(target)


def _refuse_overflow(name: str, array: Array, datatype: str, overflow: Array) -> None:
    """Raise for the first value that would overflow, if there is one."""
    if overflow.any():
        value = _first(array, overflow)
        largest = float(np.finfo(numpy_dtype(datatype)).max)
        raise _invalid(name, datatype, f"{value} is outside ±{largest:g}")


def _to_integer(name: str, array: Array, datatype: str, target: np.dtype[Any]) -> Array:
    """Cast to an integer dtype if every value is whole and inside its range.

    numpy's ``casting="same_value"`` does the check in the cast loop itself; only a
    refused cast looks for the value to name.
    """
    try:
        return array.astype(target, casting="same_value")
    except ValueError:
        pass
    info = np.iinfo(target)
    if array.dtype.kind == "f":
        # float(info.min) and float(info.max) + 1 are powers of two, exact in float64;
        # NaN fails both comparisons.
        outside = ~((array >= float(info.min)) & (array < float(info.max) + 1))
    else:
        outside = (array < info.min) | (array > info.max)
    value = _first(array, outside)
    if value is None:
        value = _first(array, np.trunc(array) != array)
        raise _invalid(name, datatype, f"{value} is not a whole number")
    if not math.isfinite(value):
        raise _invalid(name, datatype, f"{value} is not a finite number")
    raise _invalid(name, datatype, f"{value} is outside {info.min}..{info.max}")


def _json_types(data: Any) -> set[type]:
    """Return the Python types of the leaves of JSON data (nested lists)."""
    return set(map(type, np.asarray(data, dtype=object).ravel().tolist()))


def from_json(name: str, data: Any, datatype: str | None, booleans: bool = True) -> Array:
    """Return JSON data (a list, nested in row-major order) as an array of ``datatype``.

    ``datatype`` None (V1 without a declared input) takes the type the values have.
    ``booleans`` False is the caller's word that the JSON text holds no ``true`` or
    ``false``, which skips the look for booleans among numbers.
    """
    if datatype == "BYTES":
        return _strings(name, data)
    if datatype is not None and datatype not in NUMPY_BY_DATATYPE:
        numpy_dtype(datatype)  # raises: unknown, or BF16
    try:
        values = np.asarray(data)
    except ValueError as exc:  # uneven nesting, or deeper than numpy's 64 dimensions
        raise _invalid(name, datatype, f"not a rectangular array ({exc})") from None
    kind = values.dtype.kind
    if kind == "f" and not booleans and datatype in _FLOAT_TYPES:  # the hot path
        target = NUMPY_BY_DATATYPE[datatype]
        if values.dtype == target:
            return values
        if np.vdot(values, values) < _FLOAT_LIMITS_SQUARED[target]:  # see _to_float
            return values.astype(target)
        return _to_float(name, values, datatype, target)
    if kind == "U" and datatype is None:
        return _strings(name, data)
    if kind not in "biuf":
        return _from_objects(name, data, datatype)
    want = datatype or _INFERRED[kind]
    if values.size == 0:
        return values.astype(numpy_dtype(want))
    if (kind == "b") != (want == "BOOL"):
        return _from_objects(name, data, want)
    if kind != "b" and booleans and bool in _json_types(data):
        raise _invalid(name, want, "true/false among numbers; send 1 or 0")
    if kind == "f" and want in _INTEGER and np.abs(values).max() >= 2.0**53:
        return _from_objects(name, data, want)  # ints numpy turned into floats
    return cast(name, values, want)


def _strings(name: str, data: Any) -> Array:
    """Return JSON strings as a BYTES array (UTF-8)."""
    values = np.asarray(data, dtype=object)
    for value in values.ravel().tolist():
        if not isinstance(value, str):
            raise _invalid(name, "BYTES", f"{_describe(value)} is not a string")
    return as_bytes_array(values)


def _describe(value: Any) -> str:
    """Name a JSON value in a message: its type for non-numbers, else the value."""
    if isinstance(value, str):
        return repr(value[:20])
    return _JSON_TYPE_NAMES.get(type(value)) or repr(value)


def _from_objects(name: str, data: Any, datatype: str | None) -> Array:
    """The slow path: JSON numpy could not type as one kind of number.

    That is: nulls, strings, objects, booleans where numbers belong (or numbers where
    booleans belong), integers beyond 64 bits, or integers beyond 2**53 that numpy
    turned into floats because decimals sat beside them. Each value is looked at once,
    so the error names the first offender.
    """
    values = np.asarray(data, dtype=object)
    flat = values.ravel().tolist()
    want_bool = datatype == "BOOL"
    for value in flat:
        is_bool = isinstance(value, bool)
        if is_bool != want_bool or not isinstance(value, int | float):
            expected = "true or false" if want_bool else "a number"
            raise _invalid(name, datatype, f"{_describe(value)} is not {expected}")
    if datatype is None:
        datatype = "FP64" if any(isinstance(v, float) for v in flat) else "INT64"
    target = numpy_dtype(datatype)
    if want_bool:
        return np.array(flat, dtype=target).reshape(values.shape)
    if target.kind in "iu":
        info = np.iinfo(target)
        for value in flat:
            if isinstance(value, float) and not value.is_integer():
                raise _invalid(name, datatype, f"{value} is not a whole number")
            if not info.min <= value <= info.max:
                raise _invalid(name, datatype, f"{value} is outside {info.min}..{info.max}")
        return np.array([int(v) for v in flat], dtype=target).reshape(values.shape)
    try:
        floats = np.array(flat, dtype=np.float64)
    except OverflowError:
        raise _invalid(name, datatype, "an integer is too large for a float") from None
    return cast(name, floats, datatype).reshape(values.shape)
