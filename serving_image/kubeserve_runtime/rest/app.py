"""The Starlette application: routes for V1, V2, health and the OpenAPI description.

Every route goes through ``_Endpoint``, a thin wrapper that checks the bearer token
(except on open routes), turns ServingErrors into ``{"error": ...}`` responses (with
Retry-After on 503), counts the request in the metrics and writes the sampled access
log line. Bodies are read with a hard size limit (413) before any parsing.

The V2 infer route is the hot path, so ``_InferFirst``, a plain ASGI front, sends a
POST to ``/v2/models/{name}[/versions/{version}]/infer`` straight to the same wrapped
handler, skipping Starlette's two middleware layers and route scan (the wrapper already
maps every error); every other request, and any infer path it does not recognise,
goes to the Starlette application unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from kubeserve_runtime.auth import TokenAuth
from kubeserve_runtime.dataplane import DataPlane
from kubeserve_runtime.errors import InferenceFailed, InvalidInput, PayloadTooLarge, ServingError
from kubeserve_runtime.rest.openapi import openapi_document
from kubeserve_runtime.rest.v2codec import HEADER, decode_request, encode_response, parse_body

JSON = "application/json"
Handler = Callable[[Request], Awaitable[Response]]
log = logging.getLogger(__name__)
_INFER_PREFIX = "/v2/models/"
_INFER_SUFFIX = "/infer"


def json_response(doc: Any, status: int = 200) -> Response:
    """Return a JSON response serialised with orjson."""
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON)


def error_response(exc: ServingError) -> Response:
    """Return the ``{"error": message}`` response for a ServingError."""
    response = json_response({"error": exc.message}, exc.status_code)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


async def read_body(request: Request, limit: int) -> bytes:
    """Read the request body, refusing (413) anything over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidInput("Content-Length must be an integer") from None
        if size > limit:
            raise PayloadTooLarge(f"request body of {size} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Endpoint:
    """Wraps a handler with auth, error mapping, metrics and access logging."""

    def __init__(
        self, plane: DataPlane, auth: TokenAuth | None, protocol: str, open_: bool = False
    ) -> None:
        self._plane = plane
        self._auth = None if open_ else auth
        self._protocol = protocol
        self._counted = not open_
        self._inflight = plane.metrics.inflight(protocol)

    def __call__(self, handler: Handler) -> Handler:
        """Return the wrapped handler."""
        plane, auth, protocol, counted, inflight = (
            self._plane,
            self._auth,
            self._protocol,
            self._counted,
            self._inflight,
        )

        async def endpoint(request: Request) -> Response:
            started = perf_counter()
            inflight.inc()
            try:
                if auth is not None:
                    auth.check(request.headers.get("authorization"))
                response = await handler(request)
            except ServingError as exc:
                response = error_response(exc)
            except Exception:
                log.exception("unhandled error in %s", request.url.path)
                response = error_response(InferenceFailed("internal server error"))
            finally:
                inflight.dec()
            status = response.status_code
            elapsed = perf_counter() - started
            if counted:
                plane.metrics.observe_request(protocol, status, elapsed)
            if plane.log.sampled(status) and (counted or status >= 400):
                plane.log.access(
                    {
                        "method": request.method,
                        "path": request.scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "protocol": protocol,
                        "model": plane.name,
                        "client": request.client.host if request.client else None,
                    }
                )
            return response

        return endpoint


def infer_path_params(path: str) -> dict[str, str] | None:
    """Return the path parameters of a V2 infer path, or None for any other path."""
    if not (path.startswith(_INFER_PREFIX) and path.endswith(_INFER_SUFFIX)):
        return None
    parts = path[len(_INFER_PREFIX) : -len(_INFER_SUFFIX)].split("/")
    if len(parts) == 1 and parts[0]:
        return {"name": parts[0]}
    if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
        return {"name": parts[0], "version": parts[2]}
    return None


class _InferFirst:
    """ASGI front: a POST to an infer path goes straight to its handler, the rest on."""

    def __init__(self, infer: Handler, app: ASGIApp) -> None:
        self._infer = infer
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            params = infer_path_params(scope["path"])
            if params is not None:
                scope["path_params"] = params
                response = await self._infer(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)


def build_app(plane: DataPlane, auth: TokenAuth | None, max_request_bytes: int) -> ASGIApp:
    """Return the REST application for a data plane."""
    v1 = _Endpoint(plane, auth, "v1")
    v2 = _Endpoint(plane, auth, "v2")
    health = _Endpoint(plane, auth, "v2", open_=True)
    limit = max_request_bytes
    openapi = orjson.dumps(openapi_document(plane.name))

    async def live(_: Request) -> Response:
        return json_response({"live": True})

    async def ready(_: Request) -> Response:
        ok = plane.ready
        return json_response({"ready": ok}, 200 if ok else 503)

    async def root(_: Request) -> Response:
        return json_response({"status": "alive"})

    async def openapi_json(_: Request) -> Response:
        return Response(openapi, media_type=JSON)

    async def server_metadata(_: Request) -> Response:
        return json_response(plane.server_metadata())

    async def model_metadata(request: Request) -> Response:
        p = request.path_params
        return json_response(plane.model_metadata(p["name"], p.get("version")))

    async def model_ready(request: Request) -> Response:
        p = request.path_params
        ok = plane.model_ready(p["name"], p.get("version"))
        return json_response({"name": p["name"], "ready": ok}, 200 if ok else 503)

    async def infer(request: Request) -> Response:
        p = request.path_params
        plane.resolve(p["name"], p.get("version"))
        body = await read_body(request, limit)
        doc, binary = parse_body(body, request.headers.get(HEADER))
        infer_request = decode_request(doc, binary)
        result = await plane.infer(p["name"], p.get("version"), infer_request)
        binary_all = infer_request.parameters.get("binary_data_output") is True
        content, header_length = encode_response(result, binary_all)
        if header_length is None:
            return Response(content, media_type=JSON)
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(header_length)},
        )

    async def v1_models(_: Request) -> Response:
        return json_response({"models": [plane.name]})

    async def v1_model(request: Request) -> Response:
        name = request.path_params["name"]
        return json_response({"name": name, "ready": plane.model_ready(name)})

    async def v1_predict(request: Request) -> Response:
        name = request.path_params["name"]
        plane.resolve(name)
        body = await read_body(request, limit)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"malformed JSON: {exc}") from exc
        return json_response(await plane.predict_v1(name, doc))

    base = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    routes = [  # the infer routes first: Starlette tries routes in order on every request
        Route(base + "/infer", v2(infer), methods=["POST"]),
        Route(versioned + "/infer", v2(infer), methods=["POST"]),
        Route("/v1/models/{name}:predict", v1(v1_predict), methods=["POST"]),
        Route("/", health(root)),
        Route("/v2/health/live", health(live)),
        Route("/v2/health/ready", health(ready)),
        Route("/openapi.json", health(openapi_json)),
        Route("/v2/openapi.json", health(openapi_json)),
        Route("/v2", v2(server_metadata)),
        Route(base, v2(model_metadata)),
        Route(versioned, v2(model_metadata)),
        Route(base + "/ready", v2(model_ready)),
        Route(versioned + "/ready", v2(model_ready)),
        Route("/v1/models", v1(v1_models)),
        Route("/v1/models/{name}", v1(v1_model)),
    ]
    return _InferFirst(v2(infer), Starlette(routes=routes))
