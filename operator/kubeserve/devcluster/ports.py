"""Loopback port picking: each component's usual port when free, otherwise any free one.

All ports of one cluster are picked while holding every socket open, so two components
never get the same port; the sockets are closed just before the processes start.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

HOST = "127.0.0.1"

DEFAULT_PORTS: dict[str, int] = {
    "etcd-client": 2379,
    "etcd-peer": 2380,
    "kube-apiserver": 6443,
    "kube-controller-manager": 10257,
    "kube-scheduler": 10259,
    "kwok": 10247,
}


def _bind(port: int) -> socket.socket | None:
    """Return a socket bound to ``HOST:port`` (0 = any), or None when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        return None
    return sock


def pick_ports(preferred: Mapping[str, int] = DEFAULT_PORTS) -> dict[str, int]:
    """Return a distinct free port per name, the preferred one when it is free."""
    held: list[socket.socket] = []
    ports: dict[str, int] = {}
    try:
        for name, port in preferred.items():
            sock = _bind(port) if port else None
            if sock is None:
                sock = _bind(0)
            if sock is None:  # pragma: no cover - the kernel always has an ephemeral port
                raise OSError(f"no free loopback port for {name}")
            held.append(sock)
            ports[name] = sock.getsockname()[1]
    finally:
        for sock in held:
            sock.close()
    return ports


def is_free(port: int) -> bool:
    """Return whether ``HOST:port`` can be bound right now."""
    sock = _bind(port)
    if sock is None:
        return False
    sock.close()
    return True
