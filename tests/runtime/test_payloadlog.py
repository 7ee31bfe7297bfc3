"""Payload logging end to end: a real runtime process logging to a real CloudEvents
receiver process (parsed with the cloudevents SDK), to a real S3-compatible server
(moto's, on loopback) and to stdout; a dead sink costs drops (counted), never answers.

Latency is not asserted here (see bench/payloadlog.py); the tests check what arrives,
with which headers, and what the metrics count.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from cloudevents.conversion import to_dict
from moto.server import ThreadedMotoServer

from kubeserve_runtime.payloadlog.event import Origin, Record, record_events
from kubeserve_runtime.payloadlog.http import cloud_event
from kubeserve_runtime.payloads import Tensor
from kubeserve_runtime.storage import s3 as storage_s3
from kubeserve_runtime.storage.options import DownloadOptions
from kubeserve_runtime.testing import CloudEventsReceiver, RuntimeProcess, free_port, wait_until

HANDLER = """
import numpy as np


class Handler:
    inputs = [
        {"name": "x", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "ssn", "datatype": "BYTES", "shape": [-1, 1]},
    ]

    def predict(self, feed):
        return {"y": feed["x"].sum(axis=1), "echo": feed["ssn"]}
"""
KSERVE_HEADERS = (
    "ce-specversion",
    "ce-type",
    "ce-source",
    "ce-id",
    "ce-inferenceservicename",
    "ce-namespace",
    "ce-component",
    "ce-endpoint",
)
"""The headers KServe's payload logger sends (its log consumers read these)."""
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "kubeserve-test",
    "AWS_SECRET_ACCESS_KEY": "kubeserve-secret",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A custom model: inputs x (FP32) and ssn (BYTES); outputs y = row sums, echo = ssn."""
    path = tmp_path_factory.mktemp("payload-model")
    (path / "handler.py").write_text(HANDLER)
    return path


def runtime(model_dir: Path, logger: dict[str, Any], **env: str) -> RuntimeProcess:
    """A runtime serving the model as 'fraud' revision r1 of variant b in namespace ml."""
    return RuntimeProcess(
        model_dir,
        "fraud",
        "--model-version",
        "r1",
        "--namespace",
        "ml",
        "--component",
        "b",
        "--payload-logger",
        json.dumps(logger),
        env=env,
    )


def v2_body(request_id: str) -> dict[str, Any]:
    """A V2 JSON request of two rows with an id."""
    return {
        "id": request_id,
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]},
            {"name": "ssn", "datatype": "BYTES", "shape": [2, 1], "data": ["123", "456"]},
        ],
    }


def metric(server: RuntimeProcess, name: str, **labels: str) -> float:
    """A sample of the runtime's metrics (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in httpx.get(server.metrics_url).text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def by_type(events: list[dict[str, Any]], request_id: str) -> dict[str, dict[str, Any]]:
    """The received events of one request id, keyed by request/response."""
    return {
        e["event"]["type"].rsplit(".", 1)[1]: e for e in events if e["event"]["id"] == request_id
    }


def test_http_binary_mode_matches_kserve_for_v1_v2_and_grpc(
    model_dir: Path, tmp_path: Path
) -> None:
    """Every protocol logs a request and a response event in binary mode with KServe's
    ce-* headers plus ce-revision and ce-variant; the inputs and outputs named in redact
    lose their data, the others keep it."""
    with CloudEventsReceiver(tmp_path) as receiver:
        logger = {"sinks": [{"http": {"url": receiver.url}}], "redact": ["ssn", "echo"]}
        with runtime(model_dir, logger) as server:
            v2 = httpx.post(f"{server.url}/v2/models/fraud/infer", json=v2_body("v2-req"))
            assert v2.status_code == 200, v2.text
            v1 = httpx.post(
                f"{server.url}/v1/models/fraud:predict",
                json={"instances": [{"x": [5, 6], "ssn": ["789"]}]},
            )
            assert v1.status_code == 200, v1.text
            client = grpcclient.InferenceServerClient(server.grpc_target)
            x = grpcclient.InferInput("x", [1, 2], "FP32")
            x.set_data_from_numpy(np.array([[7, 8]], dtype=np.float32))
            ssn = grpcclient.InferInput("ssn", [1, 1], "BYTES")
            ssn.set_data_from_numpy(np.array([[b"000"]], dtype=object))
            client.infer("fraud", [x, ssn], request_id="grpc-req")
            client.close()
            wait_until(lambda: len(receiver.events()) >= 6, "six events received")
    events = receiver.events()
    v1_id = next(e["event"]["id"] for e in events if e["event"]["protocol"] == "v1")
    for request_id, protocol in (("v2-req", "v2"), (v1_id, "v1"), ("grpc-req", "grpc")):
        pair = by_type(events, request_id)
        assert set(pair) == {"request", "response"}, (protocol, events)
        for kind, received in pair.items():
            headers = received["headers"]
            assert received["mode"] == "binary"
            assert all(h in headers for h in KSERVE_HEADERS), headers
            assert headers["ce-specversion"] == "1.0"
            assert headers["ce-type"] == f"org.kubeflow.serving.inference.{kind}"
            assert headers["ce-id"] == request_id
            assert headers["ce-inferenceservicename"] == "fraud"
            assert headers["ce-namespace"] == "ml"
            assert headers["ce-component"] == "predictor"
            assert headers["ce-endpoint"] == "b"
            assert headers["ce-revision"] == "r1"
            assert headers["ce-variant"] == "b"
            assert headers["ce-protocol"] == protocol
            assert headers["ce-source"].startswith("http://")
            assert headers["content-type"] == "application/json"
            assert received["event"]["time"].endswith("Z")
        request_data = pair["request"]["event"]["data"]
        tensors = {t["name"]: t for t in request_data["inputs"]}
        assert tensors["ssn"]["data"] == "REDACTED"
        assert tensors["x"]["datatype"] == "FP32"
        outputs = {t["name"]: t for t in pair["response"]["event"]["data"]["outputs"]}
        assert outputs["echo"]["data"] == "REDACTED"  # outputs are redacted by name too
        assert len(outputs["y"]["data"]) == tensors["x"]["shape"][0]
    v2_request = by_type(events, "v2-req")["request"]["event"]["data"]
    assert {t["name"]: t["data"] for t in v2_request["inputs"]}["x"] == [1, 2, 3, 4]
    v2_response = by_type(events, "v2-req")["response"]["event"]["data"]
    assert {t["name"]: t["data"] for t in v2_response["outputs"]}["y"] == [3, 7]


def test_batch_items_are_what_the_sdk_makes_of_the_event() -> None:
    """Batch mode writes ``Event.structured()`` directly: the SDK's own dict of the same
    event is equal, so nothing is lost by skipping its objects."""
    origin = Origin("fraud", "ml", "predictor", "r1", "http://pod/")
    record = Record(
        "id-1",
        1.5e9,
        1.5e9 + 0.25,
        "grpc",
        [Tensor("x", "FP32", np.array([[1.5, 2.0]], dtype=np.float32))],
        [Tensor("y", "BYTES", np.array([b"yes"], dtype=object))],
        subject="alice",
    )
    events = record_events(record, origin, "fraud", "all", frozenset())
    assert [e.attributes["type"].rsplit(".", 1)[1] for e in events] == ["request", "response"]
    for event in events:
        assert to_dict(cloud_event(event)) == event.structured()
    assert events[0].attributes["subject"] == "alice"
    assert events[0].attributes["time"] == "2017-07-14T02:40:00Z"
    expected = {"name": "y", "datatype": "BYTES", "shape": [1], "data": ["yes"]}
    assert events[1].data["outputs"] == [expected]


def test_http_batch_mode_and_extra_headers(model_dir: Path, tmp_path: Path) -> None:
    """batchSize > 1 posts CloudEvents batches; headers come from the mounted files; mode
    request logs requests only."""
    headers_dir = tmp_path / "headers"
    headers_dir.mkdir()
    (headers_dir / "x-api-key").write_text("s3cret\n")
    with CloudEventsReceiver(tmp_path) as receiver:
        sink = {"url": receiver.url, "batchSize": 50, "headersDir": str(headers_dir)}
        logger = {"mode": "request", "sinks": [{"http": sink}]}
        with runtime(model_dir, logger) as server, httpx.Client() as client:
            for i in range(20):
                answer = client.post(
                    f"{server.url}/v2/models/fraud/infer", json=v2_body(f"batch-{i}")
                )
                assert answer.status_code == 200
            wait_until(lambda: len(receiver.events()) >= 20, "twenty events received")
            assert metric(server, "kubeserve_payload_events_sent_total", sink="http") == 20
    events = receiver.events()
    assert {e["mode"] for e in events} == {"batch"}
    assert all(e["headers"]["x-api-key"] == "s3cret" for e in events)
    assert {e["event"]["type"] for e in events} == {"org.kubeflow.serving.inference.request"}
    assert sorted(e["event"]["id"] for e in events) == sorted(f"batch-{i}" for i in range(20))
    assert all(e["event"]["revision"] == "r1" for e in events)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback with an empty bucket ``logs``."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    s3_client(url).create_bucket(Bucket="logs")
    yield url
    server.stop()


def s3_client(url: str) -> Any:
    """A boto3 client for the test server (built as the runtime builds its own)."""
    options = DownloadOptions(config={**S3_CREDENTIALS, "AWS_ENDPOINT_URL": url})
    return storage_s3.s3_client(storage_s3.s3_config(options))


def objects(client: Any, prefix: str) -> list[str]:
    """Keys under a prefix."""
    listing = client.list_objects_v2(Bucket="logs", Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_s3_jsonl_objects_with_prefix_and_encryption(model_dir: Path, s3_endpoint: str) -> None:
    """Events land as JSONL objects of at most maxEvents under
    <prefix>/<namespace>/<isvc>/<revision>/<date>/, written with the SSE setting."""
    sink = {
        "uri": "s3://logs/payloads",
        "maxEvents": 4,
        "flushIntervalSeconds": 0.2,
        "serverSideEncryption": "AES256",
    }
    client = s3_client(s3_endpoint)
    env = {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}
    prefix = f"payloads/ml/fraud/r1/{datetime.now(UTC):%Y-%m-%d}/"
    with runtime(model_dir, {"sinks": [{"s3": sink}]}, **env) as server:
        for i in range(5):
            answer = httpx.post(f"{server.url}/v2/models/fraud/infer", json=v2_body(f"s3-{i}"))
            assert answer.status_code == 200

        def lines() -> list[dict[str, Any]]:
            out = []
            for key in objects(client, prefix):
                body = client.get_object(Bucket="logs", Key=key)["Body"].read()
                out += [json.loads(line) for line in body.splitlines()]
            return out

        wait_until(lambda: len(lines()) >= 10, "ten events")
        events = lines()
    keys = objects(client, prefix)
    assert len(keys) >= 3  # 10 events, at most 4 per object
    assert all(k.endswith(".jsonl") for k in keys)
    for key in keys:
        head = client.head_object(Bucket="logs", Key=key)
        assert head["ServerSideEncryption"] == "AES256"
    assert sorted(e["id"] for e in events) == sorted(f"s3-{i}" for i in range(5) for _ in "rr")
    assert {e["specversion"] for e in events} == {"1.0"}
    assert {e["inferenceservicename"] for e in events} == {"fraud"}


def test_shutdown_flushes_queued_events(model_dir: Path, s3_endpoint: str) -> None:
    """Events held for a long flush interval are written when the runtime stops."""
    sink = {"uri": "s3://logs/flush", "maxEvents": 1000, "flushIntervalSeconds": 3600}
    client = s3_client(s3_endpoint)
    env = {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}
    server = runtime(model_dir, {"mode": "response", "sinks": [{"s3": sink}]}, **env)
    with server:
        for i in range(3):
            answer = httpx.post(f"{server.url}/v2/models/fraud/infer", json=v2_body(f"f-{i}"))
            assert answer.status_code == 200
        assert objects(client, "flush/") == []  # held: the interval has not passed
        assert server.stop() == 0
    keys = objects(client, "flush/")
    assert len(keys) == 1
    body = client.get_object(Bucket="logs", Key=keys[0])["Body"].read()
    assert sorted(json.loads(line)["id"] for line in body.splitlines()) == ["f-0", "f-1", "f-2"]


def test_stdout_lines(model_dir: Path) -> None:
    """The stdout sink writes one JSON log line per event, the event in its ``event``."""
    with runtime(model_dir, {"sinks": [{"stdout": {}}]}) as server:
        answer = httpx.post(f"{server.url}/v2/models/fraud/infer", json=v2_body("out-1"))
        assert answer.status_code == 200

        def payload_lines() -> list[dict[str, Any]]:
            lines = [json.loads(line) for line in server.log.splitlines() if line.startswith("{")]
            return [line for line in lines if line.get("logger") == "kubeserve_runtime.payload"]

        wait_until(lambda: len(payload_lines()) >= 2, "two payload lines")
        lines = payload_lines()
    kinds = {line["event"]["type"]: line["event"] for line in lines}
    request = kinds["org.kubeflow.serving.inference.request"]
    assert request["id"] == "out-1"
    assert request["data"]["inputs"][1]["data"] == ["123", "456"]
    assert kinds["org.kubeflow.serving.inference.response"]["variant"] == "b"


def test_dead_sink_predictions_succeed_and_drops_are_counted(model_dir: Path) -> None:
    """Nothing listens at the sink: every prediction still answers 200; events are
    dropped at the full queue and after the retries, counted by reason."""
    dead = f"http://127.0.0.1:{free_port()}/"
    logger = {"queueSize": 2, "sinks": [{"http": {"url": dead}}, {"stdout": {}}]}
    with runtime(model_dir, logger) as server, httpx.Client() as client:
        for i in range(60):
            answer = client.post(f"{server.url}/v2/models/fraud/infer", json=v2_body(f"d-{i}"))
            assert answer.status_code == 200
        queue_full = metric(
            server, "kubeserve_payload_events_dropped_total", sink="http", reason="queue_full"
        )
        assert queue_full > 0
        wait_until(
            lambda: (
                metric(
                    server,
                    "kubeserve_payload_events_dropped_total",
                    sink="http",
                    reason="send_failed",
                )
                > 0
            ),
            "a batch dropped after its retries",
        )
        assert metric(server, "kubeserve_payload_send_failures_total", sink="http") >= 3
        assert metric(server, "kubeserve_payload_events_sent_total", sink="http") == 0

        # the live sink beside the dead one is not held back by it: its events are all
        # sent or (its queue is as small) dropped at the queue, none lost to a failure
        def stdout_accounted() -> bool:
            sent = metric(server, "kubeserve_payload_events_sent_total", sink="stdout")
            full = metric(
                server, "kubeserve_payload_events_dropped_total", sink="stdout", reason="queue_full"
            )
            return sent > 0 and sent + full == 120

        wait_until(stdout_accounted, "every stdout event sent or dropped at the queue")
        assert metric(server, "kubeserve_payload_queue_depth", sink="http") <= 2
