"""Tensor (de)serialisation shared by every transport.

Raw form (REST binary extension, gRPC ``raw_*_contents``): little-endian row-major
values; ``BYTES`` elements are a 4-byte little-endian length followed by the bytes.
JSON form: a flat or nested list in row-major order. Typed gRPC form: the
``*_contents`` field of the datatype. Every malformed payload raises InvalidInput naming
the tensor; what values a datatype accepts is ``datatypes``' business.

Shapes are refused when numpy could not hold them: more than 64 dimensions, or more
than ``MAX_ELEMENTS`` elements counting zero-size dimensions as one (numpy's own limit
is ``size * itemsize`` below 2**63, checked the same way, for itemsizes up to 8).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from kubeserve_runtime.datatypes import cast, from_json, numpy_dtype
from kubeserve_runtime.errors import InvalidInput

Array = np.ndarray[Any, Any]
_LEN = struct.Struct("<I")
MAX_DIMS = 64
MAX_ELEMENTS = 2**60
# The typed gRPC field each numeric datatype travels in, as numpy sees its values.
_CONTENTS_DTYPE = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint32),
    "UINT16": np.dtype(np.uint32),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int32),
    "INT16": np.dtype(np.int32),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float32),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}


def check_shape(name: str, shape: Any) -> list[int]:
    """Return a validated shape: at most 64 non-negative ints, ``MAX_ELEMENTS`` at most."""
    if (
        not isinstance(shape, list | tuple)
        or len(shape) > MAX_DIMS
        or any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in shape)
    ):
        raise InvalidInput(
            f"input {name!r}: shape must be a list of at most {MAX_DIMS} non-negative integers"
        )
    count = math.prod(shape)
    if count > MAX_ELEMENTS or (count == 0 and math.prod(d or 1 for d in shape) > MAX_ELEMENTS):
        raise InvalidInput(f"input {name!r}: shape {list(shape)} is too large")
    return list(shape)


def _count(shape: Sequence[int]) -> int:
    """Return the number of elements of a shape."""
    return math.prod(shape)


def raw_to_array(name: str, buf: bytes | memoryview, datatype: str, shape: Sequence[int]) -> Array:
    """Decode raw little-endian bytes into an array of ``shape``."""
    dtype = numpy_dtype(datatype)
    count = _count(shape)
    if datatype == "BYTES":
        return _raw_to_bytes(name, memoryview(buf), count).reshape(shape)
    if len(buf) != count * dtype.itemsize:
        raise InvalidInput(
            f"input {name!r}: {len(buf)} bytes of data do not fit shape {list(shape)} "
            f"of {datatype} ({count * dtype.itemsize} bytes expected)"
        )
    return np.frombuffer(buf, dtype=dtype.newbyteorder("<")).reshape(shape)


def _raw_to_bytes(name: str, view: memoryview, count: int) -> Array:
    """Decode length-prefixed BYTES elements."""
    items: list[bytes] = []
    offset, end = 0, len(view)
    while offset < end:
        if offset + 4 > end:
            raise InvalidInput(f"input {name!r}: truncated BYTES element length")
        (length,) = _LEN.unpack_from(view, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInput(f"input {name!r}: BYTES element runs past the end of the data")
        items.append(bytes(view[offset : offset + length]))
        offset += length
    if len(items) != count:
        raise InvalidInput(f"input {name!r}: {len(items)} BYTES elements for {count} expected")
    out = np.empty(count, dtype=object)
    out[:] = items
    return out


def array_to_raw(array: Array, datatype: str) -> bytes:
    """Encode an array as raw little-endian bytes (length-prefixed for BYTES)."""
    if datatype == "BYTES":
        parts = []
        for value in array.ravel():
            item = value if isinstance(value, bytes) else str(value).encode()
            parts.append(_LEN.pack(len(item)))
            parts.append(item)
        return b"".join(parts)
    dtype = array.dtype
    if dtype.byteorder == ">":
        array = array.astype(dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).tobytes()


def json_to_array(
    name: str, data: Any, datatype: str, shape: Sequence[int], booleans: bool = True
) -> Array:
    """Convert JSON tensor data (flat or nested, row-major) into an array of ``shape``.

    ``booleans`` False: the JSON text holds no ``true``/``false`` (see ``from_json``).
    """
    array = from_json(name, data if isinstance(data, list) else [data], datatype, booleans)
    return _reshape(name, array, shape)


def contents_to_array(name: str, values: Any, datatype: str, shape: Sequence[int]) -> Array:
    """Convert a typed gRPC ``*_contents`` field into an array of ``shape``.

    The field is wider than some datatypes (INT8 travels in ``int_contents``, FP16 in
    ``fp32_contents``), so the values are cast with the datatype's rules.
    """
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
    else:
        numpy_dtype(datatype)
        array = cast(name, np.asarray(values, dtype=_CONTENTS_DTYPE[datatype]), datatype)
    return _reshape(name, array, shape)


def _reshape(name: str, array: Array, shape: Sequence[int]) -> Array:
    """Return ``array`` in ``shape`` if the element counts agree."""
    if array.size != _count(shape):
        raise InvalidInput(
            f"input {name!r}: {array.size} values do not fit shape {list(shape)} "
            f"({_count(shape)} expected)"
        )
    return array.reshape(shape)


def json_data(array: Array, datatype: str) -> Any:
    """Return the flat, JSON-ready data of an array (numpy arrays go to orjson as is)."""
    if datatype == "BYTES":
        return [v.decode("utf-8", "replace") for v in array.ravel()]
    flat = array.ravel()
    if flat.dtype.byteorder == ">":
        flat = flat.astype(flat.dtype.newbyteorder("="))
    return np.ascontiguousarray(flat)
