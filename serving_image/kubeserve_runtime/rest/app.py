"""The Starlette application: routes for V1, V2, health and the OpenAPI description.

Every route but V2 infer goes through ``_Endpoint``, a thin wrapper that authenticates
the caller through the ``audit.AuthGate`` (except on open routes), turns ServingErrors
into ``{"error": ...}`` responses (with Retry-After on 503), counts the request in the
metrics and writes the sampled access log line. Requests with bodies are admitted first
(``rest.admission``: 413 for a declared size over the limit, 503 past the in-flight
caps), then the body is read with the same hard limit. V2 infer, the hot path, is
``rest.infer.InferEndpoint``: the same duties on plain ASGI messages, reached through
``InferFront`` without Starlette's route scan. Starlette's own answers (unknown path
404, wrong method 405) are ``{"error": ...}`` JSON too, and ``:explain`` is a 501: this
runtime has no explainer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from kubeserve_runtime import contract
from kubeserve_runtime.audit import AuthGate
from kubeserve_runtime.dataplane import DataPlane
from kubeserve_runtime.errors import InferenceFailed, InvalidInput, NotSupported, ServingError
from kubeserve_runtime.rest.admission import Admission, declared_length
from kubeserve_runtime.rest.infer import InferEndpoint, InferFront
from kubeserve_runtime.rest.messages import (
    JSON,
    decode_content,
    error_response,
    json_response,
    receive_body,
)
from kubeserve_runtime.rest.openapi import openapi_document
from kubeserve_runtime.rest.protocol import disconnect_status
from kubeserve_runtime.rest.worker import ParseWorker

Handler = Callable[[Request], Awaitable[Response]]
log = logging.getLogger(__name__)


class _Endpoint:
    """Wraps a handler with auth, error mapping, metrics and access logging."""

    def __init__(
        self, plane: DataPlane, auth: AuthGate | None, protocol: str, open_: bool = False
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
            inflight.count += 1
            try:
                if auth is not None:
                    await auth.admit(
                        request.headers.get("authorization"),
                        protocol,
                        request.client.host if request.client else None,
                        f"{request.method} {request.scope['path']}",
                    )
                response = await handler(request)
            except ServingError as exc:
                response = error_response(exc)
            except ClientDisconnect:  # nothing reaches the client; the status is counted
                response = Response(status_code=disconnect_status(request.scope))
            except Exception:
                log.exception("unhandled error in %s", request.url.path)
                response = error_response(InferenceFailed("internal server error"))
            finally:
                inflight.count -= 1
            status = response.status_code
            elapsed = perf_counter() - started
            by_header = contract.ROUTED_HEADER in request.headers
            if plane.record(protocol, status, elapsed, counted, by_header):
                client = request.client.host if request.client else None
                plane.access(
                    protocol, request.method, status, elapsed, client, request.scope["path"]
                )
            return response

        return endpoint


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (404 unknown path, 405 wrong method) as ``{"error": ...}``."""
    assert isinstance(exc, HTTPException)
    where = f"{request.method} {request.url.path}"
    message = {
        404: f"no such endpoint: {where}",
        405: f"method not allowed: {where}",
    }.get(exc.status_code, exc.detail)
    response = json_response({"error": message}, exc.status_code)
    response.headers.update(exc.headers or {})
    return response


def build_app(
    plane: DataPlane, auth: AuthGate | None, admission: Admission, worker: ParseWorker
) -> ASGIApp:
    """Return the REST application for a data plane."""
    v1 = _Endpoint(plane, auth, "v1")
    v2 = _Endpoint(plane, auth, "v2")
    health = _Endpoint(plane, auth, "v2", open_=True)
    openapi = orjson.dumps(openapi_document(plane.name))
    infer = InferEndpoint(plane, auth, admission, worker)

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

    async def v1_models(_: Request) -> Response:
        return json_response({"models": [plane.name]})

    async def v1_model(request: Request) -> Response:
        name = request.path_params["name"]
        ok = plane.model_ready(name)
        return json_response({"name": name, "ready": ok}, 200 if ok else 503)

    async def read_json(request: Request) -> Any:
        """Admit a request, read its (possibly compressed) body and parse it as JSON.

        The admission charge is released when this returns: the parsed document is all
        that is held from here on."""
        length = request.headers.get("content-length")
        encoding = request.headers.get("content-encoding")
        limit = admission.body_limit
        charge = admission.admit(declared_length(length), encoding is not None)
        try:
            body = await receive_body(request.receive, limit)
            if encoding is not None:
                body = await decode_content(body, encoding, limit, worker.min_bytes)
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"malformed JSON: {exc}") from exc
        finally:
            admission.release(charge)

    async def v1_predict(request: Request) -> Response:
        name = request.path_params["name"]
        plane.resolve(name)
        doc, token = await plane.predict_v1(name, await read_json(request))
        response = json_response(doc)
        if token is not None:
            response.headers[contract.FEEDBACK_HEADER] = token
        return response

    async def feedback(request: Request) -> Response:
        name = request.path_params["name"]
        plane.resolve(name)
        return json_response(await plane.submit_feedback(name, await read_json(request)))

    async def v1_explain(request: Request) -> Response:
        plane.resolve(request.path_params["name"])
        raise NotSupported("this runtime serves no explainer; :explain is not available")

    base = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    routes = [  # the infer routes first: Starlette tries routes in order on every request
        Route(base + "/infer", infer, methods=["POST"]),
        Route(versioned + "/infer", infer, methods=["POST"]),
        Route("/v1/models/{name}:predict", v1(v1_predict), methods=["POST"]),
        Route("/v1/models/{name}:explain", v1(v1_explain), methods=["POST"]),
        Route(contract.FEEDBACK_PATH, v2(feedback), methods=["POST"]),
        Route("/", health(root)),
        Route(contract.LIVE_PATH, health(live)),
        Route(contract.READY_PATH, health(ready)),
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
    starlette = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    return InferFront(infer, starlette)
