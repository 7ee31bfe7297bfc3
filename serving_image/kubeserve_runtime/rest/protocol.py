"""The HTTP/1.1 connection: uvicorn's httptools protocol with limits and a graceful drain.

Limits first. A request's line and headers may hold at most ``max_header_bytes`` bytes
and ``max_header_count`` headers (431 beyond); its headers and body must arrive within
``read_timeout_s`` of its first byte (408 after; the time the application takes to
answer is not limited). A connection that sends nothing is closed after uvicorn's
keep-alive timeout. Pipelined requests queued behind one in progress when the drain
begins are dropped with the connection (HTTP/1.1 lets a server close; clients retry).

uvicorn has none of these guards for httptools (h11 has only a header size limit, and
is slower), so they live here, at the protocol, where a slow or oversized head can be
refused before the application is called. Every answer the protocol writes itself
(400, 408, 431, and the 503 of uvicorn's ``limit_concurrency``) is the runtime's
``{"error": ...}`` JSON. A refused request is answered, the write side is closed and
whatever the client still sends is read and dropped for ``LINGER_SECONDS``, so a client
still sending its headers sees the answer rather than a reset.

Client certificates: with ``client_cert_required`` (mTLS, see ``kubeserve_runtime.tls``)
a request that came over a connection without a verified client certificate is answered
403 before the application runs, except the liveness and readiness paths (kubelet's
probes carry no certificate).

Draining: while ``drain.draining`` is true (the data plane's flag), every response says
``Connection: close`` and the connection closes after it, so keep-alive clients move to
new connections (served during the shutdown delay, refused after it). When the server
then shuts down, a connection with a request in progress (even half-received) finishes
it; a connection that has not sent its first request yet gets ``FRESH_GRACE_SECONDS``
for it (its request may already be in flight); an idle keep-alive connection is closed
at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import orjson
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from kubeserve_runtime import contract
from kubeserve_runtime.rest.messages import JSON

LINGER_SECONDS = 2.0
FRESH_GRACE_SECONDS = 1.0
READ_TIMED_OUT = "kubeserve.read_timed_out"
"""Scope key set when the body stopped arriving in time; the endpoint counts a 408."""
CLIENT_CLOSED = 499  # nginx's "client closed request": counted, nothing is sent
REQUEST_TIMEOUT = 408
PROBE_PATHS = frozenset((contract.LIVE_PATH, contract.READY_PATH))
"""Paths answered under mTLS to clients without a certificate (kubelet probes have none)."""

_CONTENT_TYPE = b"content-type: " + JSON.encode() + b"\r\n"
_CLOSE = b"connection: close\r\n"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Per-request limits enforced while reading a request."""

    max_header_bytes: int
    max_header_count: int
    read_timeout_s: float


class DrainState(Protocol):
    """Anything with a ``draining`` flag (the data plane)."""

    draining: bool


class HeadTooLarge(Exception):
    """A request line plus headers passed a limit (the parser callback raises it)."""


def head_refusal(size: int, count: int, limits: HttpLimits) -> str | None:
    """Return why a request head of ``size`` bytes and ``count`` headers is refused."""
    if size > limits.max_header_bytes:
        return f"request headers exceed {limits.max_header_bytes} bytes"
    if count > limits.max_header_count:
        return f"more than {limits.max_header_count} request headers"
    return None


def disconnect_status(scope: Any) -> int:
    """The status an endpoint counts when its client went away mid-body: 408 when this
    protocol timed the body out (and answered 408 itself), else 499."""
    return REQUEST_TIMEOUT if scope.get(READ_TIMED_OUT) else CLIENT_CLOSED


def error_bytes(status: int, message: str) -> bytes:
    """Return a complete ``{"error": message}`` response that closes the connection."""
    body = orjson.dumps({"error": message})
    length = b"content-length: " + str(len(body)).encode() + b"\r\n"
    return b"".join((STATUS_LINE[status], _CONTENT_TYPE, length, _CLOSE, b"\r\n", body))


async def json_response(
    send: Any, status: int, message: str, extra: list[tuple[bytes, bytes]]
) -> None:
    """Send a complete ``{"error": message}`` response that closes the connection."""
    body = orjson.dumps({"error": message})
    headers = [
        (b"content-type", JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *extra,
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def connections_exhausted(scope: Any, receive: Any, send: Any) -> None:
    """The JSON 503 answered instead of uvicorn's text one past ``limit_concurrency``."""
    await json_response(send, 503, "too many connections; retry later", [(b"retry-after", b"1")])


async def client_certificate_missing(scope: Any, receive: Any, send: Any) -> None:
    """The JSON 403 answered under mTLS to a request that came without a certificate."""
    await json_response(send, 403, "a client certificate is required", [])


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header limits, read timeouts and a drain."""

    limits: ClassVar[HttpLimits]
    drain: ClassVar[DrainState]
    client_cert_required: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = False
        self._head_bytes = 0
        self._head_count = 0
        self._raw_head = 0
        self._messages = 0
        self._requests = 0
        self._refusal: tuple[int, str] | None = None
        self._lingering = False
        self._read_timer: asyncio.TimerHandle | None = None

    # -- connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept a connection; close it after the keep-alive timeout if it stays silent."""
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection and its timers."""
        self._cancel_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; refuse a head that grows past the limit without completing."""
        if self._lingering:
            return
        open_before, message = self._head_open, self._messages
        super().data_received(data)
        if self._lingering or not (open_before and self._head_open and message == self._messages):
            return
        self._raw_head += len(data)  # the whole chunk belongs to one unfinished head
        reason = head_refusal(self._raw_head, 0, self.limits)
        if reason is not None:
            self._refuse(431, reason)

    def send_400_response(self, msg: str) -> None:
        """Answer a request the parser (or a head limit) refused."""
        status, message = self._refusal or (400, "malformed HTTP request")
        self._refuse(status, message)

    def shutdown(self) -> None:
        """Server shutdown: finish what is in progress, wait briefly for a first request."""
        cycle = self.cycle
        if self._head_open or self.pipeline or (cycle is not None and not cycle.response_complete):
            if cycle is not None and not cycle.response_complete:
                cycle.keep_alive = False
        elif self._requests == 0:
            self.loop.call_later(FRESH_GRACE_SECONDS, self._close_if_fresh)
        else:
            self.transport.close()

    # -- parser callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        """A request starts: count its head and start its read deadline."""
        super().on_message_begin()
        self._messages += 1
        self._head_open = True
        self._head_bytes = self._head_count = self._raw_head = 0
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(self.limits.read_timeout_s, self._read_timed_out)

    def on_url(self, url: bytes) -> None:
        """Count the request target toward the head size."""
        super().on_url(url)
        self._grow_head(len(url), 0)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count one header toward the head size and count."""
        self._grow_head(len(name) + len(value) + 4, 1)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head is complete: start the request, closing after it while draining."""
        self._head_open = False
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous:
            self._requests += 1
            if self.drain.draining:
                self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        """The body is complete: the read deadline no longer applies."""
        self._cancel_read_timer()
        super().on_message_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        """Start a request, answering uvicorn's connection-limit 503 in JSON and, under
        mTLS, 403 to a client without a certificate (probe paths excepted)."""
        if app is service_unavailable:
            app = connections_exhausted
        elif self.client_cert_required and cycle.scope["path"] not in PROBE_PATHS:
            ssl_object = self.transport.get_extra_info("ssl_object")
            if ssl_object is None or not ssl_object.getpeercert():
                app = client_certificate_missing
        super()._start_asgi_task(cycle, app)

    # -- helpers ---------------------------------------------------------------------

    def _grow_head(self, size: int, count: int) -> None:
        """Add to the head's size and header count; raise when a limit is passed."""
        self._head_bytes += size
        self._head_count += count
        reason = head_refusal(self._head_bytes, self._head_count, self.limits)
        if reason is not None:
            self._refusal = (431, reason)
            raise HeadTooLarge(reason)

    def _read_timed_out(self) -> None:
        """The request did not arrive in time: 408 if unanswered, else just close."""
        self._read_timer = None
        if self.transport.is_closing() or self._lingering:
            return
        cycle = self.cycle
        if not self._head_open and cycle is not None and cycle.response_started:
            self.transport.close()
            return
        if not self._head_open and cycle is not None:
            cycle.scope[READ_TIMED_OUT] = True  # type: ignore[literal-required]
            cycle.disconnected = True  # the application sees a disconnect and sends nothing
            cycle.message_event.set()
        self._refuse(408, f"the request did not arrive within {self.limits.read_timeout_s:g} s")

    def _refuse(self, status: int, message: str) -> None:
        """Write a JSON error, half-close, and drop what still arrives for a while."""
        self._cancel_read_timer()
        if self.transport.is_closing():
            return
        self._lingering = True
        self.transport.write(error_bytes(status, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _close_if_fresh(self) -> None:
        """Close a connection that still has not sent its first request."""
        if self._requests == 0 and not self._head_open:
            self.transport.close()

    def _cancel_read_timer(self) -> None:
        """Cancel the read deadline, if armed."""
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None


def http_protocol(
    limits: HttpLimits, drain: DrainState, client_cert_required: bool = False
) -> type[HttpToolsProtocol]:
    """Return the protocol class uvicorn should use for these limits and drain state."""
    attributes = {"limits": limits, "drain": drain, "client_cert_required": client_cert_required}
    return type("ServingHttpProtocol", (GuardedHttpProtocol,), attributes)
