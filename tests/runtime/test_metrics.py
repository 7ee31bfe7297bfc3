"""Prometheus metrics from a real server, and PSI drift against a shipped profile."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import tritonclient.grpc as grpcclient
from prometheus_client import CollectorRegistry

from kubeserve_runtime.metrics import DriftMonitor, ReferenceProfile, build_profile
from kubeserve_runtime.metrics.drift import PROFILE_FILE, psi
from kubeserve_runtime.testing import RuntimeProcess

Array = np.ndarray[Any, Any]


def _samples(text: str) -> dict[str, float]:
    """Return {'name{labels}': value} for every sample in a scrape."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_request_metrics_by_protocol_and_status(sklearn_server: RuntimeProcess) -> None:
    """Requests are counted by protocol and status; latency, load and in-flight exported."""
    url = sklearn_server.url
    row = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}
    before = _samples(httpx.get(sklearn_server.metrics_url).text)
    httpx.post(f"{url}/v2/models/iris/infer", json=row)
    httpx.post(f"{url}/v2/models/iris/infer", content=b"{")
    httpx.post(f"{url}/v1/models/iris:predict", json={"instances": [[1, 2, 3, 4]]})
    client = grpcclient.InferenceServerClient(url=sklearn_server.grpc_target)
    tensor = grpcclient.InferInput("x", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.ones((1, 4)))
    client.infer("iris", [tensor])
    client.close()
    after = _samples(httpx.get(sklearn_server.metrics_url).text)
    labels = (
        'model="iris",protocol="{}",routed="weight",status="{}",variant="predictor",version="v1"'
    )

    def delta(protocol: str, status: int) -> float:
        key = "kubeserve_requests_total{" + labels.format(protocol, status) + "}"
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("v2", 200) == 1
    assert delta("v2", 400) == 1
    assert delta("v1", 200) == 1
    assert delta("grpc", 200) == 1
    assert after['kubeserve_model_load_seconds{format="sklearn",model="iris",version="v1"}'] > 0
    for name in ("queue", "inference"):
        assert after[f'kubeserve_{name}_duration_seconds_count{{model="iris",version="v1"}}'] >= 3
    assert 'kubeserve_inflight_requests{model="iris",protocol="v2",version="v1"}' in after
    assert (
        'kubeserve_request_duration_seconds_count{model="iris",protocol="grpc",'
        'routed="weight",variant="predictor",version="v1"}' in after
    )


def test_psi_and_profile_in_process(iris: tuple[Array, Array]) -> None:
    """Training data scores ~0 PSI against its own profile; shifted data scores high."""
    profile = ReferenceProfile.model_validate(build_profile(iris[0], ["a", "b", "c", "d"]))
    monitor = DriftMonitor(profile, CollectorRegistry(), "m", "")
    monitor.observe(iris[0])
    assert max(monitor.values().values()) < 0.05
    shifted = DriftMonitor(profile, CollectorRegistry(), "m", "")
    shifted.observe(iris[0] + 3.0)
    assert min(shifted.values().values()) > 0.25
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0


def test_drift_gauge_from_a_served_model(
    tmp_path: Path, sklearn_dir: Path, iris: tuple[Array, Array]
) -> None:
    """A model shipped with reference_profile.json exports PSI per feature."""
    shutil.copy(sklearn_dir / "model.joblib", tmp_path / "model.joblib")
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    (tmp_path / PROFILE_FILE).write_bytes(orjson.dumps(build_profile(iris[0], names)))
    with RuntimeProcess(tmp_path, "iris", grpc=False) as server:
        shifted = (iris[0] + 5.0).tolist()
        response = httpx.post(f"{server.url}/v1/models/iris:predict", json={"instances": shifted})
        assert response.status_code == 200
        scrape = _samples(httpx.get(server.metrics_url).text)
        for name in names:
            key = f'kubeserve_input_drift_psi{{feature="{name}",model="iris",version=""}}'
            assert scrape[key] > 0.25
        assert scrape['kubeserve_drift_observed_rows_total{model="iris",version=""}'] == 150
