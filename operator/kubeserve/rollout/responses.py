"""Bounded HTTP reads for canary analysis: a size cap and one deadline for the whole answer.

Limits first: a body is read only up to `max_bytes` (more fails the read), the whole
exchange (connect, headers, every body chunk) must finish within `deadline` seconds, and
the body must arrive uncompressed. A pod's /metrics endpoint is served by whatever
container the InferenceService runs, custom ones included, so the single cluster-wide
operator treats it as untrusted: without these limits one tenant's endless or
trickling response would exhaust the operator's memory or hold a reconcile for ever
(httpx's own timeouts apply per read, so a server sending a byte every few seconds
never trips them).

Compression is refused rather than decoded because a few kilobytes of gzip can expand
to hundreds of megabytes inside one decoded chunk, before any size check could run;
`Accept-Encoding: identity` asks for plain text, which every Prometheus exporter honours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx


class ResponseTooLarge(ValueError):
    """The body was larger than the cap (or encoded, so its size could not be bounded)."""


async def read_bounded(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    deadline: float,
    params: Mapping[str, str] | None = None,
) -> tuple[httpx.Response, bytes]:
    """GET `url`; return the response (headers and status) and at most `max_bytes` of body.

    Raises :class:`httpx.HTTPError` for transport failures, :class:`TimeoutError` when
    the whole exchange takes longer than `deadline` seconds, and :class:`ResponseTooLarge`.
    """
    async with asyncio.timeout(deadline):
        request = client.build_request(
            "GET", url, params=params, headers={"Accept-Encoding": "identity"}, timeout=deadline
        )
        response = await client.send(request, stream=True)
        try:
            encoding = response.headers.get("content-encoding", "identity").lower()
            if encoding != "identity":
                raise ResponseTooLarge(f"{url} answered with Content-Encoding {encoding!r}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise ResponseTooLarge(
                    f"{url} announced {int(declared)} bytes, over the limit of {max_bytes} bytes"
                )
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > max_bytes:
                    raise ResponseTooLarge(f"{url} sent more than the limit of {max_bytes} bytes")
            return response, bytes(body)
        finally:
            await response.aclose()
