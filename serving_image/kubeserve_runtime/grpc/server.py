"""The Open Inference Protocol gRPC service over the shared data plane.

Limits first: a message may be at most ``max_request_bytes`` (grpcio answers
RESOURCE_EXHAUSTED above it), and at most ``max_concurrent_requests`` RPCs run at once
(grpcio answers RESOURCE_EXHAUSTED beyond). grpcio reads a whole message before the
handler runs, so the REST in-flight byte budget does not apply here; the message limit
and the RPC cap bound it instead.

Requests that send ``raw_input_contents`` (tritonclient always does) get
``raw_output_contents`` back; requests with typed ``contents`` get typed contents; a
request with both is INVALID_ARGUMENT, as the OIP proto says. Bytes that do not parse
as the request message are INVALID_ARGUMENT too (grpcio's own answer would be UNKNOWN
with a logged traceback): the deserializers are wrapped to hand the handler an
``Undecodable`` marker instead of raising. Errors abort with the ServingError's gRPC
code; 503s add a ``retry-after`` trailer. Liveness and readiness RPCs skip auth, like
the REST health endpoints.

Feedback: a ModelInfer answer carries the feedback token in its ``parameters``
(``feedback_token``) and in the initial metadata (``kubeserve-feedback-token``). The
OIP defines no feedback RPC, so the runtime adds one as an extension,
``/kubeserve.feedback.v1.FeedbackService/Submit``, whose request and response are the
REST feedback route's JSON as raw bytes (no proto: any gRPC client can call it with
identity serializers). It is not part of reflection or of the OIP service.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, TypeVar

import grpc
import orjson
from google.protobuf.message import DecodeError

from kubeserve_runtime.audit import AuthGate
from kubeserve_runtime.codec import array_to_raw, check_shape, contents_to_array, raw_to_array
from kubeserve_runtime.contract import (
    FEEDBACK_GRPC_METHOD,
    FEEDBACK_HEADER,
    FEEDBACK_PARAMETER,
    ROUTED_HEADER,
)
from kubeserve_runtime.dataplane import DataPlane
from kubeserve_runtime.datatypes import numpy_dtype
from kubeserve_runtime.errors import InferenceFailed, InvalidInput, ServingError
from kubeserve_runtime.grpc.generated import grpc_predict_v2_pb2 as pb
from kubeserve_runtime.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from kubeserve_runtime.payloads import InferRequest, InferResponse, RequestedOutput, Tensor
from kubeserve_runtime.settings import RuntimeSettings
from kubeserve_runtime.tls import TlsReloader

log = logging.getLogger(__name__)
T = TypeVar("T")
PROTOCOL = "grpc"

CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP16": "fp32_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _unpack_parameters(params: Any) -> dict[str, Any]:
    """Return a protobuf parameter map as a plain dict."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        which = value.WhichOneof("parameter_choice")
        if which is not None:
            out[key] = getattr(value, which)
    return out


def _pack_parameter(target: Any, value: Any) -> None:
    """Set an InferParameter from a plain value (bool, int, float or str)."""
    if isinstance(value, bool):
        target.bool_param = value
    elif isinstance(value, int):
        target.int64_param = value
    elif isinstance(value, float):
        target.double_param = value
    else:
        target.string_param = str(value)


@dataclass(frozen=True, slots=True)
class Undecodable:
    """What a handler receives instead of a request whose bytes did not parse."""

    reason: str


def tolerant(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """Wrap a request deserializer so bad bytes become ``Undecodable``, not an exception."""

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as exc:
            return Undecodable(str(exc) or "not a valid protobuf message")

    return deserialize


def decode_request(request: Any) -> InferRequest:
    """Decode a ModelInferRequest into an InferRequest."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(
            f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs; send one per input"
        )
    if raw and any(item.HasField("contents") for item in request.inputs):
        raise InvalidInput(
            "the request has both raw_input_contents and typed contents; send one or the other"
        )
    tensors = []
    for index, item in enumerate(request.inputs):
        name, datatype = item.name, item.datatype
        shape = check_shape(name, list(item.shape))
        numpy_dtype(datatype)
        if raw:
            data = raw_to_array(name, raw[index], datatype, shape)
        else:
            values = getattr(item.contents, CONTENTS_FIELD[datatype])
            data = contents_to_array(name, values, datatype, shape)
        tensors.append(Tensor(name, datatype, data, _unpack_parameters(item.parameters)))
    outputs = [RequestedOutput(o.name, _unpack_parameters(o.parameters)) for o in request.outputs]
    return InferRequest(
        inputs=tensors,
        id=request.id,
        parameters=_unpack_parameters(request.parameters),
        outputs=outputs or None,
    )


def encode_response(response: InferResponse, raw: bool) -> Any:
    """Encode an InferResponse as a ModelInferResponse (raw or typed contents)."""
    message = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version or "",
        id=response.id,
    )
    for key, value in response.parameters.items():
        _pack_parameter(message.parameters[key], value)
    for tensor in response.outputs:
        out = message.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        if raw:
            message.raw_output_contents.append(array_to_raw(tensor.data, tensor.datatype))
        else:
            values = tensor.data.ravel()
            contents = getattr(out.contents, CONTENTS_FIELD[tensor.datatype])
            contents.extend(list(values) if tensor.datatype == "BYTES" else values.tolist())
    return message


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """Implements GRPCInferenceService on a DataPlane."""

    def __init__(self, plane: DataPlane, auth: AuthGate | None) -> None:
        self._plane = plane
        self._auth = auth
        self._inflight = plane.metrics.inflight(PROTOCOL)

    async def _call(
        self,
        request: Any,
        context: Any,
        method: str,
        run: Callable[[], Awaitable[T]],
        counted: bool = True,
    ) -> T:
        """Run one RPC with auth, metrics, access log and error mapping."""
        plane = self._plane
        started = perf_counter()
        self._inflight.count += 1
        error: ServingError | None = None
        try:
            if isinstance(request, Undecodable):
                raise InvalidInput(f"the request is not a valid {method} message: {request.reason}")
            if counted and self._auth is not None:
                metadata = dict(context.invocation_metadata() or ())
                await self._auth.admit(
                    metadata.get("authorization"), PROTOCOL, context.peer(), method
                )
            return await run()
        except ServingError as exc:
            error = exc
        except Exception:
            log.exception("unhandled error in gRPC %s", method)
            error = InferenceFailed("internal server error")
        finally:
            self._inflight.count -= 1
            status = error.status_code if error else 200
            elapsed = perf_counter() - started
            by_header = any(key == ROUTED_HEADER for key, _ in context.invocation_metadata() or ())
            if plane.record(PROTOCOL, status, elapsed, counted, by_header):
                plane.access(PROTOCOL, method, status, elapsed, context.peer())
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            context.set_trailing_metadata((("retry-after", str(retry_after)),))
        await context.abort(grpc.StatusCode[error.grpc_code], error.message)
        raise error  # abort raises; this line only tells type checkers so

    async def ServerLive(self, request: Any, context: Any) -> Any:
        """Liveness (no auth)."""

        async def run() -> Any:
            return pb.ServerLiveResponse(live=True)

        return await self._call(request, context, "ServerLive", run, counted=False)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        """Readiness (no auth)."""

        async def run() -> Any:
            return pb.ServerReadyResponse(ready=self._plane.ready)

        return await self._call(request, context, "ServerReady", run, counted=False)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        """Model readiness."""

        async def run() -> Any:
            ready = self._plane.model_ready(request.name, request.version or None)
            return pb.ModelReadyResponse(ready=ready)

        return await self._call(request, context, "ModelReady", run)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        """Server metadata."""

        async def run() -> Any:
            return pb.ServerMetadataResponse(**self._plane.server_metadata())

        return await self._call(request, context, "ServerMetadata", run)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        """Model metadata."""

        async def run() -> Any:
            meta = self._plane.model_metadata(request.name, request.version or None)
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=meta["name"],
                versions=meta["versions"],
                platform=meta["platform"],
                inputs=[tensor(**t) for t in meta["inputs"]],
                outputs=[tensor(**t) for t in meta["outputs"]],
            )

        return await self._call(request, context, "ModelMetadata", run)

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        """Inference."""

        async def run() -> Any:
            version = request.model_version or None
            self._plane.resolve(request.model_name, version)
            decoded = decode_request(request)
            result = await self._plane.infer(request.model_name, version, decoded, "grpc")
            token = result.parameters.get(FEEDBACK_PARAMETER)
            if token is not None:
                await context.send_initial_metadata(((FEEDBACK_HEADER, token),))
            return encode_response(result, raw=bool(request.raw_input_contents))

        return await self._call(request, context, "ModelInfer", run)

    async def Feedback(self, request: bytes, context: Any) -> bytes:
        """The feedback extension: the REST route's JSON in and out, as bytes.

        Request ``{"model_name": str, "items": [...]}``; answer ``{"accepted": n}``.
        A refusal aborts with the code of the first failing item's reason and the
        message naming every failing item (see ``feedback.service``).
        """

        async def run() -> bytes:
            try:
                doc = orjson.loads(request)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"malformed JSON: {exc}") from exc
            if not isinstance(doc, dict) or not isinstance(doc.get("model_name"), str):
                raise InvalidInput(
                    'the request must be a JSON object {"model_name": str, "items": [...]}'
                )
            if "items" not in doc:
                raise InvalidInput("the request has no 'items'")
            answer = await self._plane.submit_feedback(doc["model_name"], doc["items"])
            return orjson.dumps(answer)

        return await self._call(request, context, "Feedback", run)


class _GeneratedHandlers:
    """Stands in for the server so the generated code's method handlers can be wrapped."""

    def __init__(self) -> None:
        self.service = ""
        self.methods: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Ignore the generic handler: it is rebuilt from the wrapped methods."""

    def add_registered_method_handlers(self, service: str, methods: dict[str, Any]) -> None:
        """Keep the service name and its method handlers."""
        self.service, self.methods = service, methods


async def start_grpc_server(
    plane: DataPlane,
    auth: AuthGate | None,
    settings: RuntimeSettings,
    tls: TlsReloader | None = None,
) -> Any:
    """Start the gRPC server on ``settings.grpc_port`` (TLS with ``tls``) and return it."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_request_bytes),
            ("grpc.max_send_message_length", -1),
        ],
        maximum_concurrent_rpcs=settings.max_concurrent_requests,
    )
    generated = _GeneratedHandlers()
    servicer = InferenceServicer(plane, auth)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, generated)
    handlers = {
        name: handler._replace(request_deserializer=tolerant(handler.request_deserializer))
        for name, handler in generated.methods.items()
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(generated.service, handlers),)
    )
    server.add_registered_method_handlers(generated.service, handlers)
    service, method = FEEDBACK_GRPC_METHOD.strip("/").split("/")
    feedback = grpc.unary_unary_rpc_method_handler(servicer.Feedback)  # bytes in, bytes out
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service, {method: feedback}),)
    )
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    address = f"{host}:{settings.grpc_port}"
    if tls is None:
        server.add_insecure_port(address)
    else:
        server.add_secure_port(address, tls.grpc_credentials())
    await server.start()
    return server
