"""Open Inference Protocol V2 REST bodies: JSON and the binary tensor extension.

Binary requests carry ``Inference-Header-Content-Length: N``: the first N bytes are the
JSON header, the rest the raw tensors, in input order, for each input whose parameters
have ``binary_data_size``. Outputs go binary when the output asks for ``binary_data``
or the request sets ``binary_data_output``; the response then has the same header.

``decode_body`` is the entry point: it notes whether the JSON text holds ``true`` or
``false`` at all (a byte search), so numeric JSON data is searched for booleans only
when there can be some (see ``datatypes.from_json``).
"""

from __future__ import annotations

from typing import Any

import orjson

from kubeserve_runtime.codec import (
    array_to_raw,
    check_shape,
    json_data,
    json_to_array,
    raw_to_array,
)
from kubeserve_runtime.errors import InvalidInput
from kubeserve_runtime.payloads import InferRequest, InferResponse, RequestedOutput, Tensor

HEADER = "inference-header-content-length"
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def _object(value: Any, what: str) -> dict[str, Any]:
    """Return ``value`` if it is a JSON object, else raise InvalidInput."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return value


def _parameters_object(raw: dict[str, Any], what: str) -> dict[str, Any]:
    """Return the optional ``parameters`` field of a JSON object, checked to be an object."""
    params = raw.get("parameters")
    return {} if params is None else _object(params, f"{what}.parameters")


def decode_body(body: bytes, header_length: str | None) -> InferRequest:
    """Decode a V2 infer request body (JSON, or JSON header plus binary tensors)."""
    doc, binary = parse_body(body, header_length)
    end = len(body) - (0 if binary is None else len(binary))
    booleans = body.find(b"true", 0, end) >= 0 or body.find(b"false", 0, end) >= 0
    return decode_request(doc, binary, booleans)


def parse_body(body: bytes, header_length: str | None) -> tuple[Any, memoryview | None]:
    """Split a body into its parsed JSON and the binary tail (None without the header)."""
    binary: memoryview | None = None
    head: bytes | memoryview = body
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise InvalidInput("Inference-Header-Content-Length must be an integer") from None
        if n < 0 or n > len(body):
            raise InvalidInput(
                f"Inference-Header-Content-Length {n} is outside the body ({len(body)} bytes)"
            )
        view = memoryview(body)
        head, binary = view[:n], view[n:]
    try:
        return orjson.loads(head), binary
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from exc


def decode_request(doc: Any, binary: memoryview | None, booleans: bool = True) -> InferRequest:
    """Decode a parsed V2 infer request into an InferRequest.

    ``booleans`` False: the JSON text holds no ``true``/``false`` (see ``decode_body``).
    """
    body = _object(doc, "the request body")
    raw_inputs = body.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("'inputs' must be a non-empty list")
    request_id = body.get("id", "")
    if not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    offset = 0
    inputs: list[Tensor] = []
    for index, value in enumerate(raw_inputs):
        raw = _object(value, f"inputs[{index}]")
        name = raw.get("name")
        datatype = raw.get("datatype")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"inputs[{index}].name must be a non-empty string")
        if not isinstance(datatype, str):
            raise InvalidInput(f"input {name!r}: datatype must be a string")
        shape = check_shape(name, raw.get("shape"))
        params = _parameters_object(raw, f"input {name!r}")
        size = params.pop("binary_data_size", None)
        if size is not None:
            if binary is None:
                raise InvalidInput(
                    f"input {name!r} has binary_data_size but the request has no "
                    "Inference-Header-Content-Length header"
                )
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidInput(f"input {name!r}: binary_data_size must be a non-negative int")
            if offset + size > len(binary):
                raise InvalidInput(f"input {name!r}: binary data runs past the end of the body")
            data = raw_to_array(name, binary[offset : offset + size], datatype, shape)
            offset += size
        else:
            if "data" not in raw:
                raise InvalidInput(f"input {name!r} has no 'data'")
            data = json_to_array(name, raw["data"], datatype, shape, booleans)
        inputs.append(Tensor(name=name, datatype=datatype, data=data, parameters=params))
    if binary is not None and offset != len(binary):
        raise InvalidInput(f"{len(binary) - offset} bytes of binary data belong to no input")
    return InferRequest(
        inputs=inputs,
        id=request_id,
        parameters=_parameters_object(body, "request"),
        outputs=_decode_outputs(body.get("outputs")),
    )


def _decode_outputs(raw: Any) -> list[RequestedOutput] | None:
    """Decode the optional requested ``outputs`` list."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidInput("'outputs' must be a list")
    outputs = []
    for index, value in enumerate(raw):
        item = _object(value, f"outputs[{index}]")
        name = item.get("name")
        if not isinstance(name, str):
            raise InvalidInput(f"outputs[{index}].name must be a string")
        outputs.append(RequestedOutput(name, _parameters_object(item, f"output {name!r}")))
    return outputs


def encode_response(response: InferResponse, binary_all: bool) -> tuple[bytes, int | None]:
    """Encode a response; return (body, JSON header length when binary parts follow)."""
    outputs = []
    chunks: list[bytes] = []
    for tensor in response.outputs:
        out: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": tensor.shape,
        }
        if tensor.parameters.get("binary_data", binary_all) is True:
            raw = array_to_raw(tensor.data, tensor.datatype)
            out["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            out["data"] = json_data(tensor.data, tensor.datatype)
        outputs.append(out)
    doc: dict[str, Any] = {"model_name": response.model_name, "id": response.id, "outputs": outputs}
    if response.model_version:
        doc["model_version"] = response.model_version
    if response.parameters:
        doc["parameters"] = response.parameters
    header = orjson.dumps(doc, option=_DUMPS_OPTIONS)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)
