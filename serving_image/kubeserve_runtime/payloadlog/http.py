"""The http sink: CloudEvents to a receiver URL, as KServe's payload logger sends them.

Limits: one event per POST in binary mode (``batchSize`` 1, the default: ``ce-*``
headers, the V2 JSON payload as the body, what KServe log consumers read), or up to
``batchSize`` events per POST in CloudEvents batch mode
(``application/cloudevents-batch+json``: a JSON array of structured events; a batch
waits at most ``BATCH_WAIT_SECONDS`` to fill). Any status
other than 2xx is a failure. Extra headers (an API key for the receiver) are read once,
at start, from ``headersDir``: one file per header, the file name the header's name.
TLS uses the system trust store (``SSL_CERT_FILE`` overrides it).

The POSTs go through the standard library's ``http.client`` on one kept-alive
connection (reopened after any failure): it costs a quarter of httpx's CPU per POST
(about 85 against 430 microseconds here), and that CPU is taken from inference, which
shares the interpreter.
"""

from __future__ import annotations

import http.client
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from kubeserve_runtime.payloadlog.config import HttpSink as HttpSinkConfig
from kubeserve_runtime.payloadlog.event import Event
from kubeserve_runtime.storage.options import read_secret_dir

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
BATCH_WAIT_SECONDS = 0.1
"""In batch mode, the longest a batch waits to fill after its first event: at low rates
one POST then carries many events instead of one or two."""


class HttpSendError(RuntimeError):
    """The receiver answered with a status other than 2xx."""


def cloud_event(event: Event) -> CloudEvent:
    """The SDK's CloudEvent for an event (validates the attributes)."""
    return CloudEvent(dict(event.attributes, datacontenttype="application/json"), event.data)


def binary_request(event: Event) -> tuple[dict[str, str], bytes]:
    """Headers and body of one event in HTTP binary mode."""
    headers, body = to_binary(cloud_event(event), data_marshaller=orjson.dumps)
    return headers, body


def batch_body(events: list[Event]) -> bytes:
    """The body of a CloudEvents batch: a JSON array of structured events.

    Each item is ``Event.structured()``, the shape the SDK's ``to_dict`` gives for the
    same event (attributes, ``datacontenttype``, ``data``), written directly: going
    through the SDK's event objects costs about 7 microseconds per event more, CPU the
    sender takes from inference (the tests parse every batch with the SDK).
    """
    return orjson.dumps([e.structured() for e in events])


def extra_headers(directory: Path | None) -> dict[str, str]:
    """The headers mounted from a Secret (none when no directory is configured)."""
    return read_secret_dir(directory) if directory is not None else {}


class HttpSink:
    """POSTs events to one URL."""

    def __init__(self, config: HttpSinkConfig) -> None:
        self.url = config.url
        self.max_batch = config.batch_size
        self.max_wait_s = BATCH_WAIT_SECONDS if config.batch_size > 1 else 0.0
        self._headers = extra_headers(config.headers_dir)
        self._timeout = config.timeout_seconds
        parts = urlsplit(config.url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        """The kept-alive connection, opened when there is none."""
        if self._connection is None:
            if self._tls:
                self._connection = http.client.HTTPSConnection(
                    self._host,
                    self._port,
                    timeout=self._timeout,
                    context=ssl.create_default_context(),
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._connection

    def send(self, events: list[Event]) -> None:
        """POST the events (one binary-mode event, or a batch)."""
        if self.max_batch == 1 and len(events) == 1:
            headers, body = binary_request(events[0])
        else:
            headers, body = {"content-type": BATCH_CONTENT_TYPE}, batch_body(events)
        connection = self._connect()
        try:
            connection.request("POST", self._path, body, {**self._headers, **headers})
            response = connection.getresponse()
            response.read()
        except BaseException:
            self.close()
            raise
        if not 200 <= response.status < 300:
            raise HttpSendError(f"{self.url} answered {response.status}")
        if response.will_close:
            self.close()

    def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
