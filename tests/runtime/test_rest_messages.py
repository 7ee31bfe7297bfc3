"""The bounded body read, the infer endpoint's client-disconnect path and request ids."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from starlette.requests import ClientDisconnect

from kubeserve_runtime.dataplane import DataPlane, new_request_id
from kubeserve_runtime.errors import PayloadTooLarge
from kubeserve_runtime.metrics import RuntimeMetrics
from kubeserve_runtime.rest.admission import Admission
from kubeserve_runtime.rest.app import build_app
from kubeserve_runtime.rest.messages import receive_body
from kubeserve_runtime.rest.worker import ParseWorker
from kubeserve_runtime.settings import RuntimeSettings

Message = MutableMapping[str, Any]


def _receiver(*messages: Message) -> Any:
    """An ASGI receive callable that hands out ``messages`` in order."""
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return receive


def _body(chunk: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": chunk, "more_body": more}


def test_receive_body_joins_chunks_and_enforces_the_limit() -> None:
    """Chunks are joined; a streamed size over the limit is a 413; a disconnect raises."""
    got = asyncio.run(receive_body(_receiver(_body(b"ab", True), _body(b"cd")), 10))
    assert got == b"abcd"
    streamed = _receiver(_body(b"x" * 6, True), _body(b"x" * 6))
    with pytest.raises(PayloadTooLarge, match="exceeds the 10-byte limit"):
        asyncio.run(receive_body(streamed, 10))
    with pytest.raises(ClientDisconnect):
        asyncio.run(receive_body(_receiver({"type": "http.disconnect"}), 10))


def test_request_ids_are_distinct_version_4_uuids() -> None:
    """Ids made for requests without one parse as version-4 UUIDs and do not repeat."""
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)


def test_client_gone_mid_body_sends_nothing_and_counts_499(sklearn_dir: Path) -> None:
    """An infer request whose client disconnects is answered with nothing, counted as 499."""
    registry = CollectorRegistry()
    settings = RuntimeSettings(model_dir=sklearn_dir, model_name="iris")
    with ThreadPoolExecutor(1) as executor:
        plane = DataPlane(settings, RuntimeMetrics(registry, "iris", ""), executor)

        async def scenario() -> list[Message]:
            await plane.load()
            app = build_app(plane, None, Admission(8, 1 << 21, 1 << 20), ParseWorker(0))
            scope = {
                "type": "http",
                "method": "POST",
                "path": "/v2/models/iris/infer",
                "root_path": "",
                "headers": [(b"content-type", b"application/json")],
                "query_string": b"",
                "client": ("127.0.0.1", 5000),
            }
            sent: list[Message] = []

            async def send(message: Message) -> None:
                sent.append(message)

            receive = _receiver(_body(b'{"inputs": [', True), {"type": "http.disconnect"})
            await app(scope, receive, send)
            return sent

        assert asyncio.run(scenario()) == []
    scrape = generate_latest(registry).decode()
    assert (
        'kubeserve_requests_total{model="iris",protocol="v2",routed="weight",status="499",'
        'variant="predictor",version=""} 1.0'
    ) in scrape
    assert 'kubeserve_inflight_requests{model="iris",protocol="v2",version=""} 0.0' in scrape


def test_inflight_gauge_reads_the_counter_when_scraped() -> None:
    """The in-flight gauge shows the protocol's counter at scrape time."""
    registry = CollectorRegistry()
    metrics = RuntimeMetrics(registry, "m", "v")
    counter = metrics.inflight("grpc")
    assert metrics.inflight("grpc") is counter
    counter.count = 3
    scrape = generate_latest(registry).decode()
    assert 'kubeserve_inflight_requests{model="m",protocol="grpc",version="v"} 3.0' in scrape
