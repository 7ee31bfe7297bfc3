"""Drift that acts, end to end: a real kube-apiserver, ``kubeserve run``, a real runtime
serving drifted traffic, a real Prometheus scraping it and a real CloudEvents receiver.

The InferenceService's pods run under KWOK (no reachable /metrics), so the runtime runs
beside them on loopback as its stable revision: the same model name and the revision
hash as its ``version`` label, with the ``namespace`` target label every Kubernetes scrape
configuration adds. The operator reads PSI from that Prometheus, as in production.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import orjson
from isvc_api import capture, create, isvc, predictor, until
from kubernetes import client
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from kubeserve.controller.process import OperatorProcess
from kubeserve.controller.watching import condition, wait_isvc
from kubeserve.devcluster.prometheus import PrometheusServer, Target
from kubeserve.monitoring.webhook import EVENT_TYPE
from kubeserve.rollout.revision import revision_hash
from kubeserve_runtime.metrics.drift import PROFILE_FILE, build_profile
from kubeserve_runtime.testing import CloudEventsReceiver, RuntimeProcess

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def model_dir(folder: Path) -> tuple[Path, np.ndarray[Any, Any]]:
    """An iris model with the reference profile of its training rows; the rows."""
    features, labels = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), folder / "model.joblib")
    (folder / PROFILE_FILE).write_bytes(orjson.dumps(build_profile(features, NAMES)))
    return folder, np.asarray(features)


def drift_condition(obj: dict[str, Any]) -> dict[str, Any]:
    """DriftDetected (empty when absent)."""
    return condition(obj, "DriftDetected") or {}


def test_psi_above_threshold_sets_drift_detected_posts_an_event_and_calls_the_webhook(
    api_client: client.ApiClient,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    start_prometheus: Callable[..., PrometheusServer],
    tmp_path: Path,
) -> None:
    """Petal widths shifted (per-feature threshold 0.2), the rest under the global 0.25:
    DriftPending, then DriftDetected=True naming petal_width, one Warning Event, and one
    CloudEvent at the receiver with the feature's PSI."""
    spec_predictor = predictor("s3://m/v1")
    revision = revision_hash(spec_predictor)
    folder, rows = model_dir(tmp_path)
    shifted = rows.copy()
    shifted[:, 3] += 4.0
    with (
        RuntimeProcess(folder, "iris", "--model-version", revision, grpc=False) as runtime,
        CloudEventsReceiver(tmp_path) as receiver,
    ):
        answer = httpx.post(
            f"{runtime.url}/v1/models/iris:predict", json={"instances": shifted.tolist()}
        )
        assert answer.status_code == 200
        address = runtime.metrics_url.removeprefix("http://").removesuffix("/metrics")
        prometheus = start_prometheus([Target(address, {"namespace": namespace})])
        operator_factory(
            env={
                "KUBESERVE_OPERATOR_PROMETHEUS_URL": prometheus.url,
                "KUBESERVE_OPERATOR_RECONCILE_INTERVAL_SECONDS": "1",
            }
        )
        monitoring = {
            "drift": {
                "threshold": 0.25,
                "features": {"petal_width": 0.2},
                "for": "3s",
                "webhook": receiver.url,
            }
        }
        create(
            api_client,
            namespace,
            isvc("iris", {"predictor": spec_predictor, "monitoring": monitoring}),
        )
        pending = wait_isvc(
            api_client,
            namespace,
            "iris",
            lambda o: drift_condition(o).get("reason") == "DriftPending",
            "drift pending",
        )
        assert pending["status"]["revisions"]["stable"]["hash"] == revision
        assert "petal_width (since " in drift_condition(pending)["message"]
        detected = wait_isvc(
            api_client,
            namespace,
            "iris",
            lambda o: drift_condition(o).get("status") == "True",
            "drift detected",
        )
        until(lambda: len(receiver.events()) >= 1, "the drift CloudEvent")
        until(
            lambda: (
                (
                    client.CustomObjectsApi(api_client).get_namespaced_custom_object(
                        "serving.kubeserve.io", "v1alpha1", namespace, "inferenceservices", "iris"
                    )["status"]["drift"]["notified"]
                )
                is True
            ),
            "the delivery recorded",
        )

        def drift_events() -> list[Any]:
            return [
                e
                for e in client.CoreV1Api(api_client)
                .list_namespaced_event(namespace, field_selector="involvedObject.name=iris")
                .items
                if e.reason == "DriftDetected"
            ]

        # Events are posted right after the status write that records the detection.
        until(lambda: bool(drift_events()), "a DriftDetected Event")
        events = drift_events()
        received = receiver.events()
    cond = drift_condition(detected)
    assert (cond["reason"], cond["observedGeneration"]) == ("PSIAboveThreshold", 1)
    assert cond["message"].startswith("PSI above threshold: petal_width (since ")
    # Drift informs; it does not make the service unhealthy.
    assert (condition(detected, "Ready") or {}).get("status") == "True"
    assert condition(detected, "Stalled") is None
    capture(detected, "drift-detected")
    [event] = events
    assert event.type == "Warning"
    assert event.message.startswith(f"revision {revision}: input PSI above threshold for 3s")
    assert "petal_width" in event.message
    assert "sepal_length" not in event.message
    # Told once (a pass that lost a write race may repeat the POST: the same event id).
    assert len({e["event"]["id"] for e in received}) == 1
    got = received[0]
    assert got["event"]["type"] == EVENT_TYPE
    data = got["event"]["data"]
    assert (data["namespace"], data["name"], data["revision"]) == (namespace, "iris", revision)
    assert [f["name"] for f in data["features"]] == ["petal_width"]
    assert data["features"][0]["psi"] > 0.2
    assert data["features"][0]["threshold"] == 0.2
