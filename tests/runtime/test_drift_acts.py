"""The operator's drift path against real processes: a runtime serving drifted traffic
is scraped as a pod would be, the decision detects it, and the webhook's CloudEvent
reaches a real receiver (the whole loop against the API server and Prometheus is in
tests/cluster/test_drift.py)."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from kubeserve.monitoring.drift import DriftPolicy, DriftUnavailable, decide_drift
from kubeserve.monitoring.psi import scrape_psi
from kubeserve.monitoring.webhook import EVENT_TYPE, WebhookError, drift_event, send
from kubeserve.rollout.metrics import PodTarget
from kubeserve_runtime.metrics.drift import PROFILE_FILE, build_profile
from kubeserve_runtime.testing import CloudEventsReceiver, RuntimeProcess, free_port, wait_until

Array = np.ndarray[Any, Any]
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def profiled_dir(tmp_path: Path, sklearn_dir: Path, iris: tuple[Array, Array]) -> Path:
    """The iris model with a reference profile of its training data."""
    shutil.copy(sklearn_dir / "model.joblib", tmp_path / "model.joblib")
    (tmp_path / PROFILE_FILE).write_bytes(orjson.dumps(build_profile(iris[0], NAMES)))
    return tmp_path


def test_scraped_psi_detects_drift_and_the_receiver_gets_the_features(
    profiled_dir: Path, iris: tuple[Array, Array], tmp_path: Path
) -> None:
    """Shifted petal lengths only: that feature drifts, the others stay under 0.25; two
    readings `for` apart detect it and the CloudEvent names it with its PSI."""
    shifted = iris[0].copy()
    shifted[:, 2] += 5.0
    policy = DriftPolicy(threshold=0.25, features={}, for_seconds=60, webhook="set below")
    with (
        RuntimeProcess(profiled_dir, "iris", "--model-version", "r1", grpc=False) as runtime,
        CloudEventsReceiver(tmp_path) as receiver,
    ):
        answer = httpx.post(
            f"{runtime.url}/v1/models/iris:predict", json={"instances": shifted.tolist()}
        )
        assert answer.status_code == 200
        target = PodTarget("iris-r1-0", runtime.metrics_url)

        async def read() -> Any:
            async with httpx.AsyncClient() as client:
                return await scrape_psi([target], client, model="iris", version="r1")

        reading = asyncio.run(read())
        assert not isinstance(reading, DriftUnavailable)
        assert set(reading) == set(NAMES)
        assert reading["petal_length"] > 0.25
        assert max(v for k, v in reading.items() if k != "petal_length") < 0.25
        first = decide_drift(policy, None, "r1", reading, T0)
        later = decide_drift(policy, first.state, "r1", reading, T0 + timedelta(minutes=1))
        assert later.condition.status == "True"
        assert [f.feature for f in later.notify] == ["petal_length"]

        event = drift_event("ml", "iris", "r1", policy.for_seconds, later.notify)
        asyncio.run(send(receiver.url, event))
        wait_until(lambda: len(receiver.events()) == 1, "the CloudEvent arrived")
        [got] = receiver.events()
    assert got["mode"] == "binary"
    ce = got["event"]
    assert ce["type"] == EVENT_TYPE
    assert (
        ce["source"] == "/apis/serving.kubeserve.io/v1alpha1/namespaces/ml/inferenceservices/iris"
    )
    assert ce["subject"] == "iris"
    data = ce["data"]
    assert (data["namespace"], data["name"], data["revision"]) == ("ml", "iris", "r1")
    [feature] = data["features"]
    assert feature["name"] == "petal_length"
    assert feature["psi"] == pytest.approx(reading["petal_length"])
    assert (feature["threshold"], feature["since"]) == (0.25, "2026-03-01T12:00:00Z")


def test_a_pod_that_cannot_be_scraped_makes_the_reading_unavailable() -> None:
    """Nothing listens on the pod's port: unavailable, naming the pod."""
    target = PodTarget("iris-r1-0", f"http://127.0.0.1:{free_port()}/metrics")

    async def read() -> Any:
        async with httpx.AsyncClient() as client:
            return await scrape_psi([target], client, model="iris", version="r1")

    reading = asyncio.run(read())
    assert isinstance(reading, DriftUnavailable)
    assert "scraping pod iris-r1-0" in reading.reason


def test_an_unreachable_webhook_raises() -> None:
    """A refused connection is a WebhookError naming the URL (the pass retries later)."""
    url = f"http://127.0.0.1:{free_port()}/"
    event = drift_event("ml", "iris", "r1", 60, ())
    with pytest.raises(WebhookError, match=url):
        asyncio.run(send(url, event))
