"""HTTP message helpers every route shares: JSON and error responses, the bounded body.

``receive_body`` reads straight from the ASGI ``receive`` callable, so the V2 infer
endpoint (plain ASGI, see ``rest.infer``) and the Starlette routes (through
``Request.receive``) enforce the same limit the same way: a declared Content-Length
over the limit is refused (413) before a byte is read, and a streamed body is cut off
as soon as it passes the limit.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive

from kubeserve_runtime.errors import InvalidInput, PayloadTooLarge, ServingError

JSON = "application/json"


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


async def receive_body(receive: Receive, limit: int, declared: str | bytes | None) -> bytes:
    """Read a request body of at most ``limit`` bytes (413 beyond it).

    ``declared`` is the Content-Length header, when the request has one. Raises
    Starlette's ``ClientDisconnect`` when the client goes away mid-body.
    """
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidInput("Content-Length must be an integer") from None
        if size > limit:
            raise PayloadTooLarge(f"request body of {size} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
