"""Open Inference Protocol tensor datatypes and their numpy counterparts.

``BYTES`` tensors are numpy ``object`` arrays of ``bytes``. ``BF16`` has no numpy dtype
and is refused with a clear message rather than silently reinterpreted.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from kubeserve_runtime.errors import InvalidInput

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

DATATYPES: Final[tuple[str, ...]] = (*NUMPY_BY_DATATYPE, "BF16")

_DATATYPE_BY_NUMPY: Final[dict[np.dtype[Any], str]] = {
    dtype: name for name, dtype in NUMPY_BY_DATATYPE.items()
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


def datatype_of(array: np.ndarray[Any, Any]) -> str:
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


def as_bytes_array(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Return an object array of bytes for a str/bytes/object array."""
    if array.dtype == object:
        flat = [v if isinstance(v, bytes) else str(v).encode() for v in array.ravel()]
    else:
        flat = [v.encode() if isinstance(v, str) else bytes(v) for v in array.ravel().tolist()]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(array.shape)
