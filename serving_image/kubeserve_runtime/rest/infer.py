"""The V2 infer route, the hot path, as a plain ASGI application.

``InferEndpoint`` does what ``rest.app``'s endpoint wrapper does for every other route
(auth through the ``audit.AuthGate``, error mapping, in-flight count, request metrics,
sampled access log) but works on the ASGI messages themselves: the headers it needs come
from one pass over the raw header list, the request is admitted (``rest.admission``)
before its body is read from ``receive``, a large JSON body is parsed in the worker
process (``rest.worker``), and the answer goes out as two ``send`` calls. No Starlette
``Request`` or ``Response`` is built on success; errors use the same ``{"error": ...}``
response as every other route.

``InferFront`` sits in front of the Starlette application: a POST to
``/v2/models/{name}[/versions/{version}]/infer`` goes straight to the endpoint,
skipping the middleware stack and the route scan; everything else (and any infer path
under a root_path) goes to Starlette, where the same endpoint is mounted as a route.
"""

from __future__ import annotations

import logging
from time import perf_counter

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from kubeserve_runtime.audit import AuthGate
from kubeserve_runtime.contract import FEEDBACK_HEADER, FEEDBACK_PARAMETER, ROUTED_HEADER
from kubeserve_runtime.dataplane import DataPlane
from kubeserve_runtime.errors import InferenceFailed, ServingError
from kubeserve_runtime.rest.admission import Admission, declared_length
from kubeserve_runtime.rest.messages import JSON, decode_content, error_response, receive_body
from kubeserve_runtime.rest.protocol import disconnect_status
from kubeserve_runtime.rest.v2codec import encode_response
from kubeserve_runtime.rest.worker import ParseWorker

PROTOCOL = "v2"
_PREFIX = "/v2/models/"
_SUFFIX = "/infer"
_JSON = JSON.encode()
_BINARY = b"application/octet-stream"
_NO_HEADERS: list[tuple[bytes, bytes]] = []
_ROUTED_KEY = ROUTED_HEADER.encode()
"""The route's header-match mark as ASGI spells header names (lowercase bytes)."""
_FEEDBACK_HEADER = FEEDBACK_HEADER.encode()
log = logging.getLogger(__name__)


def infer_path_params(path: str) -> dict[str, str] | None:
    """Return the path parameters of a V2 infer path, or None for any other path."""
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    parts = path[len(_PREFIX) : -len(_SUFFIX)].split("/")
    if len(parts) == 1 and parts[0]:
        return {"name": parts[0]}
    if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
        return {"name": parts[0], "version": parts[2]}
    return None


class InferEndpoint:
    """``POST /v2/models/{name}[/versions/{version}]/infer`` on a data plane."""

    def __init__(
        self,
        plane: DataPlane,
        auth: AuthGate | None,
        admission: Admission,
        worker: ParseWorker,
    ) -> None:
        self._plane = plane
        self._auth = auth
        self._admission = admission
        self._worker = worker
        self._inflight = plane.metrics.inflight(PROTOCOL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one infer request."""
        plane = self._plane
        started = perf_counter()
        self._inflight.count += 1
        response: Response | None = None
        body, headers = b"", _NO_HEADERS
        try:
            body, headers = await self._infer(scope, receive)
            status = 200
        except ServingError as exc:
            response = error_response(exc)
            status = exc.status_code
        except ClientDisconnect:
            status = disconnect_status(scope)
        except Exception:
            log.exception("unhandled error in %s", scope["path"])
            response = error_response(InferenceFailed("internal server error"))
            status = response.status_code
        finally:
            self._inflight.count -= 1
        elapsed = perf_counter() - started
        if response is not None:
            await response(scope, receive, send)
        elif status == 200:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        by_header = any(key == _ROUTED_KEY for key, _ in scope["headers"])
        if plane.record(PROTOCOL, status, elapsed, True, by_header):
            client = scope.get("client")
            plane.access(
                PROTOCOL, "POST", status, elapsed, client[0] if client else None, scope["path"]
            )

    async def _infer(
        self, scope: Scope, receive: Receive
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """Run the request; return the response body and headers (raises ServingError)."""
        length = header_length = authorization = encoding = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                length = value
            elif key == b"inference-header-content-length":
                header_length = value.decode("latin-1")
            elif key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"content-encoding":
                encoding = value.decode("latin-1")
        if self._auth is not None:
            client = scope.get("client")
            await self._auth.admit(
                authorization, PROTOCOL, client[0] if client else None, f"POST {scope['path']}"
            )
        params = scope["path_params"]
        name, version = params["name"], params.get("version")
        plane = self._plane
        plane.resolve(name, version)
        admission, worker = self._admission, self._worker
        charge = admission.admit(declared_length(length), encoding is not None)
        try:
            body = await receive_body(receive, admission.body_limit)
            if encoding is not None:
                body = await decode_content(body, encoding, admission.body_limit, worker.min_bytes)
            request = await worker.decode(body, header_length)
            del body  # the parsed request is all that is needed from here on
            result = await plane.infer(name, version, request)
        finally:
            admission.release(charge)
        content, json_length = encode_response(
            result, request.parameters.get("binary_data_output") is True
        )
        size = str(len(content)).encode()
        if json_length is None:
            headers = [(b"content-type", _JSON), (b"content-length", size)]
        else:
            headers = [
                (b"content-type", _BINARY),
                (b"content-length", size),
                (b"inference-header-content-length", str(json_length).encode()),
            ]
        token = result.parameters.get(FEEDBACK_PARAMETER)
        if token is not None:
            headers.append((_FEEDBACK_HEADER, token.encode()))
        return content, headers


class InferFront:
    """ASGI front: a POST to an infer path goes straight to the endpoint, the rest on."""

    def __init__(self, infer: InferEndpoint, app: ASGIApp) -> None:
        self._infer = infer
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route one ASGI scope."""
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            params = infer_path_params(scope["path"])
            if params is not None:
                scope["path_params"] = params
                await self._infer(scope, receive, send)
                return
        await self._app(scope, receive, send)
