"""The metrics endpoint: ``GET /metrics`` on its own port, from a daemon thread.

prometheus-client's own WSGI server is used, so scraping never competes with the
inference event loop for the request parser.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server


class MetricsServer:
    """A running metrics HTTP server that can be shut down."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        server, thread = start_http_server(port, addr=host, registry=registry)
        self._server: Any = server
        self._thread: threading.Thread = thread
        self.port: int = int(server.server_port)

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
