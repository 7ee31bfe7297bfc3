"""HTTP message helpers every route shares: JSON and error responses, the bounded body.

Limits: a body is cut off (413) as soon as it passes the body limit, and so is a
compressed body whose decoded form passes it (decoding stops there, so a small
"zip bomb" costs at most the limit). Content-Encoding may be ``gzip`` (``x-gzip``),
``deflate`` (zlib, as RFC 9110 defines it and tritonclient sends it) or ``identity``;
anything else is 415. ``receive_body`` reads straight from the ASGI ``receive``
callable, so the V2 infer endpoint (plain ASGI, see ``rest.infer``) and the Starlette
routes (through ``Request.receive``) read bodies the same way; admission and the
Content-Length check come first (``rest.admission``).
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive

from kubeserve_runtime.errors import (
    InvalidInput,
    PayloadTooLarge,
    ServingError,
    UnsupportedEncoding,
)

JSON = "application/json"
_WBITS = {"gzip": 31, "x-gzip": 31, "deflate": 15}


def json_response(doc: Any, status: int = 200) -> Response:
    """Return a JSON response serialised with orjson."""
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON)


def error_response(exc: ServingError) -> Response:
    """Return the ``{"error": message}`` response for a ServingError."""
    doc: dict[str, Any] = {"error": exc.message}
    rejected = getattr(exc, "rejected", None)
    if rejected is not None:  # feedback: each refused item with its reason
        doc["rejected"] = rejected
    response = json_response(doc, exc.status_code)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    challenge = getattr(exc, "challenge", None)
    if challenge is not None:
        response.headers["WWW-Authenticate"] = challenge
    return response


async def receive_body(receive: Receive, limit: int) -> bytes:
    """Read a request body of at most ``limit`` bytes (413 beyond it).

    Raises Starlette's ``ClientDisconnect`` when the client goes away mid-body.
    """
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


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """Return a body decoded from its Content-Encoding, at most ``limit`` bytes."""
    name = encoding.strip().lower()
    if name == "identity":
        return body
    wbits = _WBITS.get(name)
    if wbits is None:
        raise UnsupportedEncoding(
            f"Content-Encoding {name!r} is not supported; use gzip, deflate or identity"
        )
    inflater = zlib.decompressobj(wbits)
    try:
        decoded = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"the body is not valid {name}: {exc}") from None
    if len(decoded) > limit:
        raise PayloadTooLarge(f"the decoded request body exceeds the {limit}-byte limit")
    if not inflater.eof or inflater.unused_data:
        raise InvalidInput(f"the body is not one complete {name} stream")
    return decoded


async def decode_content(body: bytes, encoding: str, limit: int, thread_min: int) -> bytes:
    """``inflate``, in a worker thread for bodies of ``thread_min`` bytes or more.

    zlib releases the GIL while it inflates, so a thread takes the work off the loop.
    """
    if len(body) < thread_min:
        return inflate(body, encoding, limit)
    return await asyncio.to_thread(inflate, body, encoding, limit)
