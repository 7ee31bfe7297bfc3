"""A/B experiments against a real control plane: B better reaches BWins and, with
onDecision promote, serves all unmatched traffic; an A/A experiment keeps running.

The arms' counters come from :class:`ExperimentPrometheus`, the rollout tests' real HTTP
server on loopback answering Prometheus' instant-query API, here with feedback counts per
arm (the pods under KWOK serve nothing). Waits watch live objects with timeouts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from isvc_api import create, get, isvc, predictor, until
from kubernetes import client
from test_rollout import (
    FakePrometheus,
    columns,
    cond_is,
    kubectl,
    wait_event,
    weights,
    with_prometheus,
)

from kubeserve.controller.process import OperatorProcess
from kubeserve.controller.watching import wait_isvc

COUNTS = {"predictor": (10000.0, 8740.0), "b": (10000.0, 9120.0)}
"""Arm -> (scored feedback, correct): B is better by 0.038."""


class ExperimentPrometheus(FakePrometheus):
    """Answers the experiment's accuracy queries per arm (`variant` label) from `counts`."""

    def __init__(self, counts: dict[str, tuple[float, float]]) -> None:
        super().__init__()
        self.counts = counts

    def answer(self, promql: str) -> float | None:
        found = re.search(r'variant="([^"]+)"', promql)
        if found is None or found[1] not in self.counts:
            return super().answer(promql)
        with self._lock:
            self.queries.append(promql)
        scored, correct = self.counts[found[1]]
        return correct if "kubeserve_feedback_correct_total" in promql else scored


def experiment_spec(on_decision: str, b_uri: str = "s3://m/b") -> dict[str, Any]:
    return {
        "predictor": predictor("s3://m/a"),
        "variants": [{"name": "b", "weight": 50, "predictor": predictor(b_uri)}],
        "rollout": {"interval": "1s"},
        "experiment": {"metric": "accuracy", "minSamples": 100, "onDecision": on_decision},
    }


def experiment(obj: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = (obj.get("status") or {}).get("experiment") or {}
    return result


@pytest.fixture
def better_b() -> Iterator[ExperimentPrometheus]:
    fake = ExperimentPrometheus(COUNTS)
    with fake:
        yield fake


def test_b_better_wins_and_is_promoted(
    api_client: client.ApiClient,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    better_b: ExperimentPrometheus,
    kubectl_binary: Path,
    kubeconfig: Path,
) -> None:
    operator_factory(env=with_prometheus(better_b))
    create(api_client, namespace, isvc("iris", experiment_spec("promote")))
    done = wait_isvc(
        api_client,
        namespace,
        "iris",
        lambda o: (
            cond_is(o, "ExperimentConcluded", "True", "BWins")
            and bool(experiment(o).get("promoted"))
            and {v["name"]: v["weight"] for v in o["status"]["variants"]}
            == {"b": 100, "predictor": 0}
        ),
        "B wins and is promoted",
    )
    status = experiment(done)
    assert (status["decision"], status["winner"]) == ("BWins", "b")
    [comparison] = status["comparisons"]
    assert comparison["pValue"] <= 0.05
    assert comparison["lower"] > 0
    arms = {a["name"]: a for a in status["arms"]}
    assert (arms["predictor"]["samples"], arms["b"]["estimate"]) == (10000, 0.912)
    message = next(c for c in done["status"]["conditions"] if c["type"] == "ExperimentConcluded")
    assert message["message"].startswith("b: accuracy 0.912 vs 0.874, +0.038 [0.0")
    b_service = f"iris-b-{arms['b']['revision']}"
    until(
        lambda: weights(api_client, namespace, "iris") == {b_service: 100}, "route sends all to b"
    )
    reasons = [e.reason for e in wait_event(api_client, namespace, "iris", "ExperimentPromoted")]
    assert "ExperimentConcluded" in reasons
    row = columns(kubectl(kubectl_binary, kubeconfig, "get", "isvc", "iris", "-n", namespace))
    assert row["EXPERIMENT"] == "BWins"
    # Every query stayed in the namespace and named an arm.
    assert all(f'namespace="{namespace}"' in q for q in better_b.queries)


def test_a_a_experiment_keeps_running(
    api_client: client.ApiClient,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    same = {"predictor": (10000.0, 9000.0), "b": (10000.0, 9000.0)}
    with ExperimentPrometheus(same) as fake:
        operator_factory(env=with_prometheus(fake))
        create(api_client, namespace, isvc("iris", experiment_spec("promote", b_uri="s3://m/a")))
        looked = wait_isvc(
            api_client,
            namespace,
            "iris",
            lambda o: any(a.get("samples") == 10000 for a in experiment(o).get("arms", [])),
            "the arms counted",
        )
        asked = fake.count()
        until(lambda: fake.count() >= asked + 12, "three more looks (4 queries each)")
        obj = get(api_client, namespace, "iris")
    status = experiment(obj)
    assert status["decision"] == "Running"
    assert cond_is(looked, "ExperimentConcluded", "False", "Running")
    assert {v["name"]: v["weight"] for v in obj["status"]["variants"]} == {"b": 50, "predictor": 50}
