"""`kubeserve local`'s port plan: the pod's ports for the first component, three more each."""

from __future__ import annotations

import socket

import pytest

from kubeserve.local.errors import LocalError
from kubeserve.local.ports import Ports, check_free, port_plan


def test_ports_are_consecutive_triples_from_the_base() -> None:
    """Component i: REST base+3i, gRPC +1, metrics +2; 0 means free ports."""
    assert port_plan(2, 8080) == [
        Ports(8080, 8081, 8082),
        Ports(8083, 8084, 8085),
    ]
    free = port_plan(2, 0)
    assert len({p for ports in free for p in (ports.http, ports.grpc, ports.metrics)}) == 6
    with pytest.raises(LocalError, match="no room"):
        port_plan(2, 65533)


def test_a_taken_port_is_refused_with_the_way_out() -> None:
    """A port already bound on the host: the message says which and what to pass."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            LocalError, match=f"port {port} on 127.0.0.1 is not available.*--port 0"
        ):
            check_free("127.0.0.1", port)
