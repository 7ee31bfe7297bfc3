"""The floor's HTTP half: a bare echo on the runtime's stack (uvicorn + uvloop + httptools
+ Starlette). It answers the V2 infer route with the request body and the ready route
with 200, doing no parsing and no model work."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def echo(request: Request) -> Response:
    """Return the request body unchanged."""
    return Response(await request.body(), media_type="application/json")


async def ready(_: Request) -> Response:
    """Always ready."""
    return Response(status_code=200)


app = Starlette(
    routes=[
        Route("/v2/models/{name}/infer", echo, methods=["POST"]),
        Route("/v2/health/ready", ready),
        Route("/v2/models/{name}/ready", ready),
    ]
)
