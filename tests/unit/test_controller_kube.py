"""The operator's API door never waits forever: every request has a timeout.

The server here is a real listening socket on loopback that completes TCP handshakes
(the kernel's backlog) but never reads or answers — exactly a hung API server
connection. Each Kube call must give up with the client's timeout error instead of
parking its reconcile for good. Closing the socket afterwards resets any connection a
broken client would still hold, so a failing test ends instead of hanging.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client

from kubeserve.controller.kube import Kube
from kubeserve.controller.metrics import OperatorMetrics

GUARD = 30.0
"""Failure guard (seconds): a call still waiting by then has no timeout."""

ISVC: dict[str, Any] = {
    "apiVersion": "serving.kubeserve.io/v1alpha1",
    "kind": "InferenceService",
    "metadata": {"name": "iris", "namespace": "ml", "uid": "u"},
}
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "iris", "namespace": "ml"},
}

CALLS: dict[str, Callable[[Kube], Awaitable[Any]]] = {
    "apply": lambda kube: kube.apply(DEPLOYMENT),
    "delete": lambda kube: kube.delete("apps/v1", "Deployment", "ml", "iris"),
    "get": lambda kube: kube.get_isvc("ml", "iris"),
    "patch status": lambda kube: kube.patch_status("ml", "iris", {"url": "u"}, "1"),
    "event": lambda kube: kube.event(ISVC, "Normal", "Test", "hello"),
    "list pods": lambda kube: kube.list_pods("ml", {"a": "b"}),
}


@pytest.fixture
def hung_server() -> Iterator[socket.socket]:
    """A loopback socket that accepts connections (backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock


@pytest.mark.parametrize("call", sorted(CALLS))
def test_every_api_call_gives_up_on_a_hung_connection(
    hung_server: socket.socket, call: str
) -> None:
    """Discovery, reads and writes all end with a timeout error (retries included)."""
    port = hung_server.getsockname()[1]
    api = client.ApiClient(client.Configuration(host=f"http://127.0.0.1:{port}"))
    kube = Kube(api, OperatorMetrics(), timeout=0.2)

    async def scenario() -> None:
        try:
            with pytest.raises(
                (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.MaxRetryError)
            ):
                await asyncio.wait_for(CALLS[call](kube), GUARD)
        finally:
            hung_server.close()  # resets what a client without timeout would still wait on

    asyncio.run(scenario())
    api.close()
