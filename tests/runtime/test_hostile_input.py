"""Hostile data against real runtime processes, over REST V1, V2 (JSON and binary) and gRPC.

Each case sends one request whose data does not fit (values a datatype cannot hold,
wrong JSON types, shapes numpy cannot hold, bytes that do not add up) and expects a
4xx (gRPC INVALID_ARGUMENT) whose message names the problem; then a valid request over
the same protocol must get the right answer, so the server is known to keep serving.

Servers: ``typed`` (a custom model with INT8, INT64, FP16, FP32, BOOL and BYTES inputs
that echoes them, batching on), ``iris`` (scikit-learn, FP64 [-1, 4]) and ``onnx`` (the
02-onnx-batching example's model, no inputSchema, batching on). Protocol edges (header
limits, slow clients, compression, invalid protobuf) are tested with the server code.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
import pytest
from tritonclient.grpc import service_pb2_grpc

from kubeserve_runtime.testing import RuntimeProcess

ROOT = Path(__file__).resolve().parents[2]
Outcome = tuple[int, str]
TypedBody = Callable[..., dict[str, Any]]
GrpcRequest = Callable[..., Any]
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
}
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


@dataclass(frozen=True)
class Tools:
    """What a case needs to build and send its request."""

    servers: dict[str, RuntimeProcess]
    typed_body: TypedBody
    typed_instance: Callable[..., dict[str, Any]]
    grpc_request: GrpcRequest


Send = Callable[[Tools], Outcome]


@dataclass(frozen=True)
class Case:
    """One hostile request: the server it goes to, how it is sent, what must come back."""

    name: str
    server: str
    protocol: str  # v1 | v2-json | v2-binary | grpc: the valid follow-up uses the same
    send: Send
    message: str
    status: int = 400


def _error(response: httpx.Response) -> Outcome:
    """Status and error message of a REST response."""
    try:
        message = response.json().get("error", response.text)
    except ValueError:
        message = response.text
    return response.status_code, str(message)


def _post(tools: Tools, server: str, path: str, **kwargs: Any) -> Outcome:
    """POST to a server and return status and message."""
    url = f"{tools.servers[server].url}{path}"
    return _error(httpx.post(url, timeout=30, **kwargs))


def _infer_path(server: str) -> str:
    """The V2 infer path of a server's model."""
    return f"/v2/models/{server}/infer"


def v2_json(server: str, doc: Any) -> Send:
    """A V2 JSON infer body."""
    return lambda tools: _post(tools, server, _infer_path(server), json=doc)


def v2_text(server: str, content: bytes) -> Send:
    """A V2 infer body given as raw bytes."""
    return lambda tools: _post(tools, server, _infer_path(server), content=content)


def typed(**replace: dict[str, Any] | None) -> Send:
    """A typed-server V2 JSON body with some inputs replaced (None drops one)."""
    return lambda tools: _post(
        tools, "typed", _infer_path("typed"), json=tools.typed_body(**replace)
    )


def _binary_post(
    tools: Tools, server: str, doc: dict[str, Any], raw: dict[str, bytes], tail: bytes
) -> Outcome:
    """POST ``doc`` with the data of the inputs named in ``raw`` as binary tensors."""
    chunks = []
    for tensor in doc["inputs"]:
        if tensor["name"] in raw:
            data = raw[tensor["name"]]
            tensor.pop("data", None)
            tensor.setdefault("parameters", {}).setdefault("binary_data_size", len(data))
            chunks.append(data)
    header = orjson.dumps(doc)
    return _post(
        tools,
        server,
        _infer_path(server),
        content=header + b"".join(chunks) + tail,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )


def typed_binary(
    raw: dict[str, bytes], tail: bytes = b"", **replace: dict[str, Any] | None
) -> Send:
    """A typed-server binary request: the inputs in ``raw`` travel as binary data."""
    return lambda tools: _binary_post(tools, "typed", tools.typed_body(**replace), raw, tail)


def v1(server: str, doc: Any) -> Send:
    """A KServe V1 :predict body."""
    return lambda tools: _post(tools, server, f"/v1/models/{server}:predict", json=doc)


def typed_v1(**replace: list[Any]) -> Send:
    """A typed-server V1 body of one instance with some rows replaced."""
    path = "/v1/models/typed:predict"
    return lambda tools: _post(
        tools, "typed", path, json={"instances": [tools.typed_instance(**replace)]}
    )


def _grpc_call(tools: Tools, server: str, request: Any) -> Outcome:
    """Send a ModelInfer request; status mapped to its HTTP equivalent."""
    with grpc.insecure_channel(tools.servers[server].grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        try:
            stub.ModelInfer(request, timeout=30)
        except grpc.RpcError as exc:
            return HTTP_STATUS.get(exc.code(), 599), str(exc.details())
    return 200, ""


def typed_grpc(edit: Callable[[Any], None] | None = None, **replace: dict[str, Any] | None) -> Send:
    """A typed-server gRPC request with typed contents, then ``edit`` applied to it."""

    def send(tools: Tools) -> Outcome:
        request = tools.grpc_request("typed", tools.typed_body(**replace))
        if edit is not None:
            edit(request)
        return _grpc_call(tools, "typed", request)

    return send


def _raw_input(name: str, datatype: str, raw: bytes, shape: list[int]) -> Callable[[Any], None]:
    """An edit that makes one input of a gRPC request carry ``raw`` as its raw contents.

    Every input then travels raw (the protocol allows raw or typed, not both).
    """

    def edit(request: Any) -> None:
        raws = []
        for item in request.inputs:
            if item.name == name:
                item.datatype = datatype
                del item.shape[:]
                item.shape.extend(shape)
                raws.append(raw)
            else:
                raws.append(_typed_to_raw(item))
            item.ClearField("contents")
        request.raw_input_contents.extend(raws)

    return edit


def _typed_to_raw(item: Any) -> bytes:
    """The raw encoding of a typed-contents input of the typed server's valid request."""
    dtypes = {"INT8": "<i1", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "BOOL": "?"}
    if item.datatype == "BYTES":
        values = list(item.contents.bytes_contents)
        return b"".join(struct.pack("<I", len(v)) + v for v in values)
    field = {"INT8": "int_contents", "INT64": "int64_contents", "BOOL": "bool_contents"}
    values = getattr(item.contents, field.get(item.datatype, "fp32_contents"))
    return np.asarray(list(values), dtype=dtypes[item.datatype]).tobytes()


def _shape(shape: list[int]) -> Callable[[Any], None]:
    """An edit that sets the shape of the gRPC request's f32 input."""

    def edit(request: Any) -> None:
        item = next(i for i in request.inputs if i.name == "f32")
        del item.shape[:]
        item.shape.extend(shape)

    return edit


def _datatype(name: str, datatype: str) -> Callable[[Any], None]:
    """An edit that renames the datatype of one gRPC input (its contents stay)."""

    def edit(request: Any) -> None:
        next(i for i in request.inputs if i.name == name).datatype = datatype

    return edit


def _fp64(*values: float) -> bytes:
    """Little-endian FP64 bytes."""
    return np.asarray(values, dtype="<f8").tobytes()


DEEP = b'{"inputs": [{"name": "f32", "datatype": "FP32", "shape": [1], "data": ' + b"[" * 3000
ONNX_NULL = {
    "inputs": [
        {"name": "float_input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, None, 1, 2]}
    ]
}

CASES = [
    # -- V2 JSON: values the datatype cannot hold (issue items 11 and 19) --------------
    Case(
        "json FP64 300.7 for INT8",
        "typed",
        "v2-json",
        typed(i8={"datatype": "FP64", "data": [[300.7, 1e10]]}),
        "input 'i8': data is not valid INT8: 300.7 is outside -128..127",
    ),
    Case(
        "json fractions for INT64",
        "typed",
        "v2-json",
        typed(i64={"data": [[1.9, -2.7]]}),
        "input 'i64': data is not valid INT64: 1.9 is not a whole number",
    ),
    Case(
        "json 300 for INT8",
        "typed",
        "v2-json",
        typed(i8={"data": [[300, 1]]}),
        "input 'i8': data is not valid INT8: 300 is outside",
    ),
    Case(
        "json 2**70 for INT64",
        "typed",
        "v2-json",
        typed(i64={"data": [[2**70, 1]]}),
        "input 'i64': data is not valid INT64: 1.1805916207174113e+21 is outside",
    ),
    Case(
        "json 'nan' for FP32",
        "typed",
        "v2-json",
        typed(f32={"data": [["nan", "inf"]]}),
        "input 'f32': data is not valid FP32: 'nan' is not a number",
    ),
    Case(
        "json null for FP32",
        "typed",
        "v2-json",
        typed(f32={"data": [[None, 1.0]]}),
        "input 'f32': data is not valid FP32: null is not a number",
    ),
    Case(
        "json 1e39 for FP32",
        "typed",
        "v2-json",
        typed(f32={"data": [[1e39, 1.0]]}),
        "input 'f32': data is not valid FP32: 1e+39 is outside",
    ),
    Case(
        "json 1e6 for FP16",
        "typed",
        "v2-json",
        typed(f16={"data": [[1e6, 1.0]]}),
        "input 'f16': data is not valid FP16: 1000000.0 is outside",
    ),
    Case(
        "json FP64 1e6 for an FP16 input",
        "typed",
        "v2-json",
        typed(f16={"datatype": "FP64", "data": [[1e6, 1.0]]}),
        "input 'f16': data is not valid FP16: 1000000.0 is outside",
    ),
    Case(
        "json 2 for BOOL",
        "typed",
        "v2-json",
        typed(flag={"data": [[2, 0]]}),
        "input 'flag': data is not valid BOOL: 2 is not true or false",
    ),
    Case(
        "json 'yes' for BOOL",
        "typed",
        "v2-json",
        typed(flag={"data": [["yes", True]]}),
        "input 'flag': data is not valid BOOL: 'yes' is not true or false",
    ),
    Case(
        "json true among FP32",
        "typed",
        "v2-json",
        typed(f32={"data": [[True, 1.5]]}),
        "input 'f32': data is not valid FP32: true/false among numbers",
    ),
    Case(
        "json an object for FP32",
        "typed",
        "v2-json",
        typed(f32={"data": [[{"a": 1}, 1.5]]}),
        "input 'f32': data is not valid FP32: an object is not a number",
    ),
    Case(
        "json uneven rows",
        "typed",
        "v2-json",
        typed(f32={"shape": [2, 2], "data": [[1.0], [2.0, 3.0]]}),
        "input 'f32': data is not valid FP32: not a rectangular array",
    ),
    Case(
        "json a number for BYTES",
        "typed",
        "v2-json",
        typed(text={"data": [[5]]}),
        "input 'text': data is not valid BYTES: 5 is not a string",
    ),
    Case(
        "json null for BYTES",
        "typed",
        "v2-json",
        typed(text={"data": [[None]]}),
        "input 'text': data is not valid BYTES: null is not a string",
    ),
    Case(
        "json FP64 1.5 for an INT8 input",
        "typed",
        "v2-json",
        typed(i8={"datatype": "FP64", "data": [[1.5, 2]]}),
        "input 'i8': data is not valid INT8: 1.5 is not a whole number",
    ),
    Case(
        "json BYTES for an FP32 input",
        "typed",
        "v2-json",
        typed(f32={"datatype": "BYTES", "data": [["a", "b"]]}),
        "input 'f32': datatype BYTES cannot feed the model's FP32 input",
    ),
    Case(
        "onnx example null",
        "onnx",
        "v2-json",
        v2_json("onnx", ONNX_NULL),
        "input 'float_input': data is not valid FP32: null is not a number",
    ),
    # -- V2 JSON: shapes and structure (issue item 12) ---------------------------------
    Case(
        "json dim 2**70 (a float to the JSON parser)",
        "typed",
        "v2-json",
        typed(f32={"shape": [0, 2**70], "data": []}),
        "input 'f32': shape must be a list of at most 64 non-negative integers",
    ),
    Case(
        "json dims 2**62 beside a zero",
        "typed",
        "v2-json",
        typed(f32={"shape": [0, 2**62, 2**62], "data": []}),
        "input 'f32': shape [0, 4611686018427387904, 4611686018427387904] is too large",
    ),
    Case(
        "json 2**32 x 2**32",
        "typed",
        "v2-json",
        typed(f32={"shape": [2**32, 2**32], "data": [1.0]}),
        "input 'f32': shape [4294967296, 4294967296] is too large",
    ),
    Case(
        "json 65 dims",
        "typed",
        "v2-json",
        typed(f32={"shape": [1] * 65, "data": [1.0]}),
        "input 'f32': shape must be a list of at most 64 non-negative integers",
    ),
    Case(
        "json negative dim",
        "typed",
        "v2-json",
        typed(f32={"shape": [1, -2]}),
        "input 'f32': shape must be a list of at most 64 non-negative integers",
    ),
    Case(
        "json values do not fit the shape",
        "typed",
        "v2-json",
        typed(f32={"shape": [1, 3]}),
        "input 'f32': 2 values do not fit shape [1, 3] (3 expected)",
    ),
    Case(
        "json shape the model does not take",
        "typed",
        "v2-json",
        typed(f32={"shape": [2, 1]}),
        "input 'f32': shape [2, 1] does not match the model's [-1, 2] (-1 = any)",
    ),
    Case(
        "json unknown datatype",
        "typed",
        "v2-json",
        typed(f32={"datatype": "FP33"}),
        "unknown datatype 'FP33'",
    ),
    Case(
        "json BF16",
        "typed",
        "v2-json",
        typed(f32={"datatype": "BF16"}),
        "datatype BF16 is not supported",
    ),
    Case("json missing input", "typed", "v2-json", typed(flag=None), "missing input(s): 'flag'"),
    Case(
        "json unknown input",
        "typed",
        "v2-json",
        typed(f32={"name": "zzz"}),
        "unknown input 'zzz'; this model takes 'i8', 'i64'",
    ),
    Case(
        "json input twice",
        "typed",
        "v2-json",
        typed(i8={"name": "f32", "datatype": "FP32"}),
        "input 'f32' appears more than once",
    ),
    Case(
        "json data null",
        "typed",
        "v2-json",
        typed(f32={"data": None}),
        "input 'f32': data is not valid FP32: null is not a number",
    ),
    Case("json nested 3000 deep", "typed", "v2-json", v2_text("typed", DEEP), "malformed JSON"),
    Case(
        "json unknown output",
        "typed",
        "v2-json",
        lambda t: _post(
            t, "typed", _infer_path("typed"), json={**t.typed_body(), "outputs": [{"name": "nope"}]}
        ),
        "unknown output(s) 'nope'",
    ),
    Case(
        "json id not a string",
        "typed",
        "v2-json",
        lambda t: _post(t, "typed", _infer_path("typed"), json={**t.typed_body(), "id": 5}),
        "'id' must be a string",
    ),
    # -- V2 binary ---------------------------------------------------------------------
    Case(
        "binary FP64 300.7 for INT8",
        "typed",
        "v2-binary",
        typed_binary({"i8": _fp64(300.7, 1e10)}, i8={"datatype": "FP64"}),
        "input 'i8': data is not valid INT8: 300.7 is outside -128..127",
    ),
    Case(
        "binary FP64 NaN for INT64",
        "typed",
        "v2-binary",
        typed_binary({"i64": _fp64(float("nan"), 1)}, i64={"datatype": "FP64"}),
        "input 'i64': data is not valid INT64: nan is not a finite number",
    ),
    Case(
        "binary FP64 1e39 for FP32",
        "typed",
        "v2-binary",
        typed_binary({"f32": _fp64(1e39, 1)}, f32={"datatype": "FP64"}),
        "input 'f32': data is not valid FP32: 1e+39 is outside",
    ),
    Case(
        "binary INT64 2 for BOOL",
        "typed",
        "v2-binary",
        typed_binary({"flag": np.array([2, 0], "<i8").tobytes()}, flag={"datatype": "INT64"}),
        "input 'flag': data is not valid BOOL: 2 is neither 0 nor 1",
    ),
    Case(
        "binary bytes do not fit the shape",
        "typed",
        "v2-binary",
        typed_binary({"i8": b"\x01\x02\x03"}),
        "input 'i8': 3 bytes of data do not fit shape [1, 2] of INT8 (2 bytes expected)",
    ),
    Case(
        "binary 2**32 x 2**32",
        "typed",
        "v2-binary",
        typed_binary({"i8": b"\x01\x02"}, i8={"shape": [2**32, 2**32]}),
        "input 'i8': shape [4294967296, 4294967296] is too large",
    ),
    Case(
        "binary size past the body",
        "typed",
        "v2-binary",
        typed_binary({"i8": b"\x01\x02"}, i8={"parameters": {"binary_data_size": 99}}),
        "input 'i8': binary data runs past the end of the body",
    ),
    Case(
        "binary size negative",
        "typed",
        "v2-binary",
        typed_binary({"i8": b"\x01\x02"}, i8={"parameters": {"binary_data_size": -1}}),
        "input 'i8': binary_data_size must be a non-negative int",
    ),
    Case(
        "binary bytes left over",
        "typed",
        "v2-binary",
        typed_binary({"i8": b"\x01\x02"}, tail=b"\x00" * 5),
        "5 bytes of binary data belong to no input",
    ),
    Case(
        "binary BYTES length truncated",
        "typed",
        "v2-binary",
        typed_binary({"text": b"\x05\x00"}),
        "input 'text': truncated BYTES element length",
    ),
    Case(
        "binary BYTES element past the end",
        "typed",
        "v2-binary",
        typed_binary({"text": b"\x09\x00\x00\x00ab"}),
        "input 'text': BYTES element runs past the end of the data",
    ),
    # -- V1 ----------------------------------------------------------------------------
    Case(
        "v1 null",
        "iris",
        "v1",
        v1("iris", {"instances": [[None, 3.5, 1.4, 0.2]]}),
        "input 'input-0': data is not valid FP64: null is not a number",
    ),
    Case(
        "v1 'nan' string",
        "iris",
        "v1",
        v1("iris", {"instances": [["nan", 3.5, 1.4, 0.2]]}),
        "input 'input-0': data is not valid FP64: 'nan' is not a number",
    ),
    Case(
        "v1 true among numbers",
        "iris",
        "v1",
        v1("iris", {"instances": [[True, 3.5, 1.4, 0.2]]}),
        "input 'input-0': data is not valid FP64: true/false among numbers",
    ),
    Case(
        "v1 uneven rows",
        "iris",
        "v1",
        v1("iris", {"instances": [IRIS_ROW, [1.0, 2.0]]}),
        "input 'input-0': data is not valid FP64: not a rectangular array",
    ),
    Case(
        "v1 number beyond a double",
        "iris",
        "v1",
        lambda t: _post(
            t, "iris", "/v1/models/iris:predict", content=b'{"instances": [[1e400, 3.5, 1.4, 0.2]]}'
        ),
        "malformed JSON",
    ),
    Case(
        "v1 300 for INT8",
        "typed",
        "v1",
        typed_v1(i8=[300, 1]),
        "input 'i8': data is not valid INT8: 300 is outside",
    ),
    Case(
        "v1 2 for BOOL",
        "typed",
        "v1",
        typed_v1(flag=[2, 0]),
        "input 'flag': data is not valid BOOL: 2 is not true or false",
    ),
    Case(
        "v1 features the model does not take",
        "iris",
        "v1",
        v1("iris", {"instances": [[1.0, 2.0, 3.0]]}),
        "input 'input-0': shape [1, 3] does not match the model's [-1, 4]",
    ),
    # -- gRPC --------------------------------------------------------------------------
    Case(
        "grpc int_contents 300 for INT8",
        "typed",
        "grpc",
        typed_grpc(i8={"data": [[300, 1]]}),
        "input 'i8': data is not valid INT8: 300 is outside -128..127",
    ),
    Case(
        "grpc fp32_contents 1e6 for FP16",
        "typed",
        "grpc",
        typed_grpc(f16={"data": [[1e6, 1]]}),
        "input 'f16': data is not valid FP16: 1000000.0 is outside",
    ),
    Case(
        "grpc fp64_contents NaN for an INT64 input",
        "typed",
        "grpc",
        typed_grpc(i64={"datatype": "FP64", "data": [[float("nan"), 1.0]]}),
        "input 'i64': data is not valid INT64: nan is not a finite number",
    ),
    Case(
        "grpc int64_contents 2 for a BOOL input",
        "typed",
        "grpc",
        typed_grpc(flag={"datatype": "INT64", "data": [[2, 0]]}),
        "input 'flag': data is not valid BOOL: 2 is neither 0 nor 1",
    ),
    Case(
        "grpc 2**32 x 2**32",
        "typed",
        "grpc",
        typed_grpc(_shape([2**32, 2**32])),
        "input 'f32': shape [4294967296, 4294967296] is too large",
    ),
    Case(
        "grpc dim 2**63-1 beside a zero",
        "typed",
        "grpc",
        typed_grpc(_shape([0, 2**63 - 1])),
        "input 'f32': shape [0, 9223372036854775807] is too large",
    ),
    Case(
        "grpc values do not fit the shape",
        "typed",
        "grpc",
        typed_grpc(_shape([1, 3])),
        "input 'f32': 2 values do not fit shape [1, 3] (3 expected)",
    ),
    Case(
        "grpc unknown datatype",
        "typed",
        "grpc",
        typed_grpc(_datatype("f32", "FP33")),
        "unknown datatype 'FP33'",
    ),
    Case(
        "grpc raw FP64 300.7 for INT8",
        "typed",
        "grpc",
        typed_grpc(_raw_input("i8", "FP64", _fp64(300.7, 1e10), [1, 2])),
        "input 'i8': data is not valid INT8: 300.7 is outside -128..127",
    ),
    Case(
        "grpc raw bytes do not fit the shape",
        "typed",
        "grpc",
        typed_grpc(_raw_input("i8", "INT8", b"\x01\x02\x03", [1, 2])),
        "input 'i8': 3 bytes of data do not fit shape [1, 2] of INT8",
    ),
]


def _valid(tools: Tools, server: str, protocol: str) -> None:
    """A valid request over ``protocol``; asserts the answer is right."""
    if server == "typed":
        body = tools.typed_body()
        if protocol == "grpc":
            status, message = _grpc_call(tools, "typed", tools.grpc_request("typed", body))
            assert status == 200, message
            return
        if protocol in ("v2-binary", "v1"):
            send = typed_binary({"i8": b"\x80\x7f"}) if protocol == "v2-binary" else typed_v1()
            status, message = send(tools)
            assert status == 200, message
            return
        response = httpx.post(f"{tools.servers['typed'].url}{_infer_path('typed')}", json=body)
        assert response.status_code == 200, response.text
        echoed = {out["name"]: out["data"] for out in response.json()["outputs"]}
        sent = {
            t["name"]: np.asarray(t["data"], dtype=object).ravel().tolist() for t in body["inputs"]
        }
        assert echoed == sent  # exact: no value of the edge-of-range request changed
        return
    if server == "iris":
        status, message = (
            v1("iris", {"instances": [IRIS_ROW]})(tools)
            if protocol == "v1"
            else v2_json(
                "iris",
                {
                    "inputs": [
                        {"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": IRIS_ROW}
                    ]
                },
            )(tools)
        )
        assert status == 200, message
        return
    doc = {
        "inputs": [{"name": "float_input", "datatype": "FP32", "shape": [1, 4], "data": IRIS_ROW}]
    }
    response = httpx.post(f"{tools.servers['onnx'].url}{_infer_path('onnx')}", json=doc)
    assert response.status_code == 200, response.text
    probabilities = next(o for o in response.json()["outputs"] if o["name"] == "probabilities")
    assert None not in probabilities["data"]


@pytest.fixture(scope="module")
def onnx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """The 02-onnx-batching example's model, made by its make_model.py, no inputSchema."""
    out = tmp_path_factory.mktemp("onnx-example")
    script = ROOT / "examples" / "02-onnx-batching" / "make_model.py"
    subprocess.run([sys.executable, str(script), "--out", str(out)], check=True)
    with RuntimeProcess(out, "onnx", "--max-batch-size", "8") as server:
        yield server


@pytest.fixture(scope="module")
def tools(
    typed_server: RuntimeProcess,
    sklearn_server: RuntimeProcess,
    onnx_server: RuntimeProcess,
    typed_body: TypedBody,
    typed_instance: Callable[..., dict[str, Any]],
    grpc_request: GrpcRequest,
) -> Tools:
    """The three servers and the request builders."""
    servers = {"typed": typed_server, "iris": sklearn_server, "onnx": onnx_server}
    return Tools(servers, typed_body, typed_instance, grpc_request)


def test_the_table_has_forty_kinds_over_every_protocol() -> None:
    """At least 40 distinct cases, and every protocol has some."""
    assert len({case.name for case in CASES}) == len(CASES) >= 40
    assert {case.protocol for case in CASES} == {"v1", "v2-json", "v2-binary", "grpc"}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_input_is_4xx_naming_the_problem_and_the_server_keeps_serving(
    tools: Tools, case: Case
) -> None:
    """The hostile request gets its 4xx and message; a valid one right after gets 200."""
    status, message = case.send(tools)
    assert status == case.status, message
    assert case.message in message
    _valid(tools, case.server, case.protocol)
