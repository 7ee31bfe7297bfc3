"""Which ports each local runtime gets: the pod's ports for the first, three more per variant.

Limits: a port is checked free just before its runtime starts, so another process can
still take it in between (the runtime then fails to bind and its log says so); the same
holds for ``--port 0``, whose free ports come from the kernel at planning time.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from kubeserve.local.errors import LocalError


@dataclass(frozen=True)
class Ports:
    """REST, gRPC and metrics ports of one process."""

    http: int
    grpc: int
    metrics: int


def port_plan(count: int, base: int) -> list[Ports]:
    """Consecutive port triples from `base`, or free ports everywhere when `base` is 0."""
    if base == 0:
        return [Ports(free_port(), free_port(), free_port()) for _ in range(count)]
    if base + 3 * count - 1 > 65535:
        raise LocalError(f"--port {base} leaves no room for {count * 3} ports")
    return [Ports(base + 3 * i, base + 3 * i + 1, base + 3 * i + 2) for i in range(count)]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_free(host: str, port: int) -> None:
    """Raise LocalError when `port` is taken on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise LocalError(
                f"port {port} on {host} is not available ({exc.strerror}); "
                "pass --port N for another range, or --port 0 for free ports"
            ) from exc
