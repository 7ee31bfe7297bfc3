"""Canary, progressive and A/B rollout against a real control plane, as a user drives it.

Each test applies InferenceServices to its own namespace, watched by its own
``kubeserve run`` process, and checks what a user would look at: the HTTPRoute (validated
by the real Gateway API CRDs), Deployments, ``kubectl get isvc`` columns, conditions and
Events. Progressive rollouts read canary metrics from :class:`FakePrometheus`, a real
HTTP server on loopback answering Prometheus' instant-query API with values the test
chooses (the canary pods under KWOK have no reachable /metrics). Waits watch or poll live
objects with timeouts; nothing sleeps as an assertion.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import joblib
import pytest
from isvc_api import (
    capture,
    create,
    custom,
    get,
    isvc,
    patch,
    predictor,
    set_storage_uri,
    until,
)
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from kubeserve.controller.process import OperatorProcess
from kubeserve.controller.watching import condition, is_ready, wait_isvc
from kubeserve_runtime.contract import (
    ANNOTATION_APPLIED_HASH,
    FEEDBACK_PARAMETER,
    GROUP,
    ROUTED_BY_HEADER,
    ROUTED_HEADER,
)
from kubeserve_runtime.testing import RuntimeProcess

GATEWAY = "gateway.networking.k8s.io"
LABEL = "serving.kubeserve.io/inferenceservice"
NGINX = "nginx.ingress.kubernetes.io"


# --------------------------------------------------------------------------- helpers


def route(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """The HTTPRoute of an InferenceService."""
    obj: dict[str, Any] = custom(api).get_namespaced_custom_object(
        GATEWAY, "v1", namespace, "httproutes", name
    )
    return obj


def weights(api: client.ApiClient, namespace: str, name: str) -> dict[str, int]:
    """Service -> weight in the HTTPRoute's default (last) rule."""
    rule = route(api, namespace, name)["spec"]["rules"][-1]
    return {b["name"]: b["weight"] for b in rule["backendRefs"]}


def deployment(api: client.ApiClient, namespace: str, name: str) -> Any:
    """One Deployment (V1Deployment), or None."""
    found = (
        client.AppsV1Api(api)
        .list_namespaced_deployment(namespace, field_selector=f"metadata.name={name}")
        .items
    )
    return found[0] if found else None


def deployment_names(api: client.ApiClient, namespace: str, name: str) -> set[str]:
    """Names of the Deployments owned by an InferenceService."""
    items = (
        client.AppsV1Api(api)
        .list_namespaced_deployment(namespace, label_selector=f"{LABEL}={name}")
        .items
    )
    return {d.metadata.name for d in items}


def events(api: client.ApiClient, namespace: str, name: str) -> list[Any]:
    """Events about one object, oldest first."""
    items = (
        client.CoreV1Api(api)
        .list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        .items
    )
    return sorted(items, key=lambda e: (e.first_timestamp or e.event_time, e.metadata.name))


def wait_event(api: client.ApiClient, namespace: str, name: str, reason: str) -> list[Any]:
    """Wait until an Event with `reason` exists (posted right after the status); return all."""
    until(
        lambda: reason in [e.reason for e in events(api, namespace, name)],
        f"a {reason} Event",
    )
    return events(api, namespace, name)


def revisions(obj: dict[str, Any]) -> dict[str, Any]:
    """status.revisions (empty when absent)."""
    result: dict[str, Any] = (obj.get("status") or {}).get("revisions") or {}
    return result


def current(obj: dict[str, Any]) -> bool:
    """Whether the status describes the object's current generation."""
    observed = (obj.get("status") or {}).get("observedGeneration")
    return bool(observed == obj["metadata"]["generation"])


def cond_is(obj: dict[str, Any], type_: str, status: str, reason: str | None = None) -> bool:
    """Whether a condition has `status` (and `reason`) for the current generation."""
    cond = condition(obj, type_)
    return (
        current(obj)
        and cond is not None
        and cond["status"] == status
        and (reason is None or cond["reason"] == reason)
    )


def canary_at(percent: int) -> Callable[[dict[str, Any]], bool]:
    """A wait predicate: the current generation's canary takes `percent`%."""
    return lambda o: (
        current(o) and (revisions(o).get("canary") or {}).get("trafficPercent") == percent
    )


def kubectl(binary: Path, kubeconfig: Path, *args: str, timeout: float = 60) -> str:
    """Run the real kubectl against the test cluster; return its stdout."""
    done = subprocess.run(
        [str(binary), *args],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def columns(table: str) -> dict[str, str]:
    """The one row of a `kubectl get` table by column header (empty cells are "")."""
    header, row = table.rstrip("\n").splitlines()
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    ends = [*starts[1:], None]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, ends, strict=True)}


def reconciles(operator: OperatorProcess) -> float:
    """Successful reconcile passes of an operator so far."""
    return operator.metrics().get(("kubeserve_reconcile_total", (("result", "success"),)), 0.0)


# --------------------------------------------------------------------------- fake Prometheus


class FakePrometheus:
    """A real HTTP server on loopback answering ``GET /api/v1/query`` with chosen values.

    The operator's queries (see ``kubeserve.rollout.prometheus``) are told apart by their
    content: ``histogram_quantile`` -> p99 in seconds, ``status=~"5.."`` -> errors, other
    ``kubeserve_requests_total`` queries -> requests. Every query is recorded. Feedback
    queries (``sum(increase(kubeserve_feedback_...{...version="R"}[W]))``) are answered
    by ``feedback`` when set (see :func:`scraped_feedback`: the sum over real runtime
    processes' /metrics, the whole count standing for the window's increase).
    """

    def __init__(self) -> None:
        self.values = {"requests": 100.0, "errors": 0.0, "p99": 0.05}
        self.feedback: Callable[[str, str], float] | None = None
        """(family, revision) -> count, for ``kubeserve_feedback_*`` queries when set."""
        self.queries: list[str] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                promql = parse_qs(parts.query).get("query", [""])[0]
                value = fake.answer(promql) if parts.path == "/api/v1/query" else None
                if value is None:
                    body = {"status": "error", "errorType": "bad_data", "error": "unknown query"}
                    self._send(400, body)
                    return
                sample = {"metric": {}, "value": [time.time(), repr(value)]}
                self._send(
                    200, {"status": "success", "data": {"resultType": "vector", "result": [sample]}}
                )

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, promql: str) -> float | None:
        """The chosen value for one query (None for a query it does not know)."""
        with self._lock:
            self.queries.append(promql)
            feedback = re.fullmatch(
                r'sum\(increase\((kubeserve_feedback_\w+)\{.*version="(\w+)"\}\[\d+s\]\)\)', promql
            )
            if feedback is not None and self.feedback is not None:
                return self.feedback(feedback[1], feedback[2])
            if "histogram_quantile" in promql:
                return self.values["p99"]
            if 'status=~"5.."' in promql:
                return self.values["errors"]
            if "kubeserve_requests_total" in promql:
                return self.values["requests"]
            return None

    def set(self, **values: float) -> None:
        """Change the answers."""
        with self._lock:
            self.values.update(values)

    def count(self) -> int:
        """Queries answered so far."""
        with self._lock:
            return len(self.queries)

    def __enter__(self) -> FakePrometheus:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    """A fake-but-real Prometheus on loopback (healthy canary values by default)."""
    with FakePrometheus() as fake:
        yield fake


def with_prometheus(fake: FakePrometheus, **env: str) -> dict[str, str]:
    """Operator settings that point the analysis at `fake`."""
    return {"KUBESERVE_OPERATOR_PROMETHEUS_URL": fake.url, **env}


# --------------------------------------------------------------------------- manual canary


def start_manual_canary(
    api: client.ApiClient, namespace: str, replicas: int = 2
) -> tuple[str, str]:
    """Create iris (v1) with a 10% manual canary policy, then edit it to v2; return names."""
    spec = {
        "predictor": predictor("s3://m/v1", min_replicas=replicas, max_replicas=replicas),
        "rollout": {"canaryTrafficPercent": 10},
    }
    create(api, namespace, isvc("iris", spec))
    ready = wait_isvc(api, namespace, "iris", is_ready, "Ready")
    stable = revisions(ready)["stable"]["name"]
    patch(api, namespace, "iris", {"spec": {"predictor": {"model": {"storageUri": "s3://m/v2"}}}})
    at10 = wait_isvc(api, namespace, "iris", canary_at(10), "canary at 10%")
    return stable, revisions(at10)["canary"]["name"]


def test_manual_canary_splits_traffic_and_revert_rolls_back(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    kubectl_binary: Path,
    kubeconfig: Path,
) -> None:
    """10% canary -> HTTPRoute 90/10 and kubectl columns; reverting the spec -> 100% stable."""
    stable, canary = start_manual_canary(api_client, namespace)
    assert weights(api_client, namespace, "iris") == {stable: 90, canary: 10}
    assert deployment(api_client, namespace, stable).spec.replicas == 2  # full capacity
    assert deployment(api_client, namespace, canary).spec.replicas == 1  # sized from 10%
    obj = get(api_client, namespace, "iris")
    assert cond_is(obj, "RolloutProgressing", "True", "CanaryProgressing")
    assert cond_is(obj, "Ready", "True")
    # A manual canary holding its share is what the spec asked for: neither kstatus
    # condition, so a GitOps health check passes while it waits for a person.
    assert condition(obj, "Reconciling") is None
    assert condition(obj, "Stalled") is None
    capture(obj, "manual-canary")

    # The CRD's printer columns, as kubectl shows them.
    row = columns(kubectl(kubectl_binary, kubeconfig, "get", "isvc", "iris", "-n", namespace))
    assert list(row) == ["NAME", "URL", "READY", "STABLE", "CANARY%", "EXPERIMENT", "AGE"]
    assert row["URL"] == f"http://iris.{namespace}.example.com"
    assert (row["READY"], row["STABLE"], row["CANARY%"]) == ("True", stable, "10")

    # Revert the predictor to the stable spec: the canary is abandoned, stable gets 100%.
    set_storage_uri(api_client, namespace, "iris", "s3://m/v1")
    back = wait_isvc(
        api_client,
        namespace,
        "iris",
        lambda o: current(o) and "canary" not in revisions(o) and is_ready(o),
        "canary abandoned",
    )
    assert revisions(back)["stable"]["name"] == stable
    assert revisions(back)["stable"]["trafficPercent"] == 100
    assert weights(api_client, namespace, "iris") == {stable: 100}
    history = revisions(back)["history"]
    assert (history[0]["name"], history[0]["outcome"]) == (canary, "Superseded")
    row = columns(kubectl(kubectl_binary, kubeconfig, "get", "isvc", "iris", "-n", namespace))
    assert (row["STABLE"], row["CANARY%"]) == (stable, "")
    until(
        lambda: deployment_names(api_client, namespace, "iris") == {stable},
        "abandoned canary removed after its drain",
    )


def test_manual_promotion_moves_traffic_only_at_full_capacity(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    """Removing canaryTrafficPercent promotes: the canary is Ready at the stable's size
    before traffic moves (held back here by a pod quota), the old stable shrinks after."""
    stable, canary = start_manual_canary(api_client, namespace)
    core = client.CoreV1Api(api_client)
    core.create_namespaced_resource_quota(
        namespace,
        {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": "3"}}},
    )
    until(
        lambda: (
            (core.read_namespaced_resource_quota("pods", namespace).status.used or {}).get("pods")
            == "3"
        ),
        "quota usage computed",
    )
    patch(api_client, namespace, "iris", {"spec": {"rollout": {"canaryTrafficPercent": None}}})
    wait_isvc(
        api_client,
        namespace,
        "iris",
        lambda o: cond_is(o, "RolloutProgressing", "True", "Promoting"),
        "promotion started",
    )
    until(
        lambda: deployment(api_client, namespace, canary).spec.replicas == 2,
        "canary scaled to the stable's size",
    )
    until(
        lambda: bool(
            core.list_namespaced_event(namespace, field_selector="reason=FailedCreate").items
        ),
        "the quota refused the canary's second pod",
    )
    # The canary cannot become Ready at full size: traffic stays where it was.
    obj = get(api_client, namespace, "iris")
    assert revisions(obj)["stable"]["name"] == stable
    assert weights(api_client, namespace, "iris") == {stable: 90, canary: 10}
    assert deployment(api_client, namespace, stable).spec.replicas == 2
    assert "needs 2 ready replicas" in (condition(obj, "RolloutProgressing") or {})["message"]

    core.delete_namespaced_resource_quota("pods", namespace)
    promoted = wait_isvc(
        api_client,
        namespace,
        "iris",
        lambda o: current(o) and revisions(o)["stable"]["name"] == canary,
        "canary promoted",
    )
    assert weights(api_client, namespace, "iris") == {canary: 100}
    assert deployment(api_client, namespace, canary).status.ready_replicas == 2
    # The old stable keeps its size while it drains, then waits at zero for a rollback.
    assert deployment(api_client, namespace, stable).spec.replicas == 2
    assert revisions(promoted)["previous"]["name"] == stable
    assert revisions(promoted)["history"][0]["outcome"] == "Promoted"
    until(
        lambda: deployment(api_client, namespace, stable).spec.replicas == 0,
        "old stable scaled to zero after the drain",
    )
    final = wait_isvc(
        api_client,
        namespace,
        "iris",
        lambda o: cond_is(o, "RolloutProgressing", "False", "Complete"),
        "rollout complete",
    )
    assert cond_is(final, "RolloutSucceeded", "True", "Stable")


def test_kubectl_wait_for_ready(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    kubectl_binary: Path,
    kubeconfig: Path,
) -> None:
    """`kubectl wait --for=condition=Ready isvc/NAME` returns once the operator says so."""
    create(api_client, namespace, isvc("iris", {"predictor": predictor("s3://m/v1")}))
    out = kubectl(
        kubectl_binary,
        kubeconfig,
        "wait",
        "--for=condition=Ready",
        "isvc/iris",
        "-n",
        namespace,
        "--timeout=60s",
        timeout=90,
    )
    assert out.strip() == f"inferenceservice.{GROUP}/iris condition met"
    ready = get(api_client, namespace, "iris")
    assert is_ready(ready)
    assert condition(ready, "Reconciling") is None
    assert condition(ready, "Stalled") is None
    capture(ready, "ready")


# --------------------------------------------------------------------------- progressive


def progressive_spec(uri: str, analysis: dict[str, Any], steps: list[int]) -> dict[str, Any]:
    """A spec with a progressive rollout every 2 seconds."""
    return {
        "predictor": predictor(uri),
        "rollout": {"steps": steps, "interval": "2s", "analysis": analysis},
    }


def test_progressive_rollout_promotes_when_analysis_passes(
    api_client: client.ApiClient,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    prometheus: FakePrometheus,
) -> None:
    """Every check passes: 20% -> 50% -> promoted, with Events and a history entry (the
    operator's history limit of 1 keeps only the newest)."""
    operator_factory(env=with_prometheus(prometheus, KUBESERVE_OPERATOR_HISTORY_LIMIT="1"))
    analysis = {"maxErrorRate": 0.01, "maxLatencyP99Ms": 250, "minRequests": 50}
    create(api_client, namespace, isvc("iris", progressive_spec("s3://m/v1", analysis, [20, 50])))
    stable = revisions(wait_isvc(api_client, namespace, "iris", is_ready, "Ready"))["stable"]
    set_storage_uri(api_client, namespace, "iris", "s3://m/v2")
    at20 = wait_isvc(api_client, namespace, "iris", canary_at(20), "canary at 20%")
    canary = revisions(at20)["canary"]
    assert cond_is(at20, "Reconciling", "True", "CanaryProgressing")
    capture(at20, "canary-progressing")
    assert weights(api_client, namespace, "iris") == {stable["name"]: 80, canary["name"]: 20}
    done = wait_isvc(
        api_client,
        namespace,
        "iris",
        lambda o: (
            cond_is(o, "RolloutSucceeded", "True", "Stable")
            and revisions(o)["stable"]["hash"] == canary["hash"]
        ),
        "progressive rollout promoted",
    )
    assert weights(api_client, namespace, "iris") == {canary["name"]: 100}
    [entry] = revisions(done)["history"]
    assert (entry["hash"], entry["outcome"]) == (canary["hash"], "Promoted")
    assert cond_is(done, "RolledBack", "False")
    reasons = [(e.reason, e.message) for e in wait_event(api_client, namespace, "iris", "Promoted")]
    weights_moved = [m for r, m in reasons if r == "CanaryWeight"]
    assert weights_moved == [
        f"canary {canary['hash']} takes 20% (step 1 of 2)",
        f"canary {canary['hash']} takes 50% (step 2 of 2)",
    ]
    passed = [m for r, m in reasons if r == "AnalysisPassed"]
    assert len(passed) == 2
    assert "100 requests, error rate 0, p99 50ms" in passed[0]
    assert [r for r, _ in reasons if r == "Promoted"] == ["Promoted"]
    # The analysis asked about the canary revision only, in this namespace.
    selector = f'namespace="{namespace}",model="iris",version="{canary["hash"]}"'
    assert prometheus.queries
    assert all(selector in q for q in prometheus.queries)


def rolled_back_gauge(operator: OperatorProcess, namespace: str) -> float | None:
    """The operator's ``kubeserve_inferenceservice_condition`` of iris' RolledBack."""
    labels = (("name", "iris"), ("namespace", namespace), ("type", "RolledBack"))
    return operator.metrics().get(("kubeserve_inferenceservice_condition", labels))


def test_progressive_rollout_rolls_back_on_errors_and_stays_back(
    api_client: client.ApiClient,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    prometheus: FakePrometheus,
) -> None:
    """Error rate too high twice -> RolledBack with the values, a Warning Event, 100% stable,
    the canary at 0 replicas, and no new attempt until the predictor changes."""
    prometheus.set(requests=100, errors=12)
    op = operator_factory(
        env=with_prometheus(prometheus, KUBESERVE_OPERATOR_RECONCILE_INTERVAL_SECONDS="1")
    )
    analysis = {"maxErrorRate": 0.01, "minRequests": 10, "failureThreshold": 2}
    create(api_client, namespace, isvc("iris", progressive_spec("s3://m/v1", analysis, [25, 50])))
    stable = revisions(wait_isvc(api_client, namespace, "iris", is_ready, "Ready"))["stable"]
    set_storage_uri(api_client, namespace, "iris", "s3://m/v2")
    back = wait_isvc(
        api_client,
        namespace,
        "iris",
        lambda o: cond_is(o, "RolledBack", "True", "AnalysisFailed"),
        "rolled back",
    )
    message = "error rate 0.12 > max 0.01 at step 25% (2 failed checks)"
    assert (condition(back, "RolledBack") or {})["message"] == message
    until(
        lambda: rolled_back_gauge(op, namespace) == 1.0,
        "the operator exports RolledBack=1 (the chart's KubeserveRolledBack alert reads it)",
    )
    assert cond_is(back, "RolloutSucceeded", "False", "RolledBack")
    assert cond_is(back, "RolloutProgressing", "False", "RolledBack")
    assert cond_is(back, "Ready", "True")  # the stable still serves
    # ... but the spec's revision will not roll out until the spec changes: Stalled.
    assert cond_is(back, "Stalled", "True", "RolledBack")
    assert message in (condition(back, "Stalled") or {})["message"]
    assert condition(back, "Reconciling") is None
    capture(back, "rolled-back")
    canary = revisions(back)["canary"]
    assert canary["trafficPercent"] == 0
    assert weights(api_client, namespace, "iris") == {stable["name"]: 100}
    assert (revisions(back)["history"][0]["hash"], revisions(back)["history"][0]["outcome"]) == (
        canary["hash"],
        "RolledBack",
    )
    warnings = [
        (e.reason, e.message)
        for e in wait_event(api_client, namespace, "iris", "RolledBack")
        if e.type == "Warning"
    ]
    assert warnings == [
        (
            "AnalysisFailed",
            f"canary {canary['hash']}: error rate 0.12 > max 0.01 at step 25% "
            "(1 failed check), rollback at 2 failed checks",
        ),
        ("RolledBack", f"revision {canary['hash']} rolled back to {stable['hash']}: {message}"),
    ]
    settled = wait_isvc(
        api_client,
        namespace,
        "iris",
        lambda o: (
            not o["status"]["rollout"].get("retiring")
            and revisions(o)["canary"]["readyReplicas"] == 0
        ),
        "the canary drained and gone",
    )
    # The pass that ended the drain scaled the canary down before it wrote the status.
    assert deployment(api_client, namespace, canary["name"]).spec.replicas == 0

    # More passes (timer every second) change nothing and query nothing.
    queried, passes = prometheus.count(), reconciles(op)
    until(lambda: reconciles(op) >= passes + 3, "three more reconciles", timeout=20)
    still = get(api_client, namespace, "iris")
    assert still["status"] == settled["status"]
    assert prometheus.count() == queried
    assert deployment(api_client, namespace, canary["name"]).spec.replicas == 0
    assert weights(api_client, namespace, "iris") == {stable["name"]: 100}

    # A new predictor spec is a new attempt.
    prometheus.set(errors=0)
    set_storage_uri(api_client, namespace, "iris", "s3://m/v3")
    retry = wait_isvc(api_client, namespace, "iris", canary_at(25), "new canary at 25%")
    assert revisions(retry)["canary"]["hash"] not in (canary["hash"], stable["hash"])
    assert cond_is(retry, "RolledBack", "False")
    assert condition(retry, "Stalled") is None
    assert cond_is(retry, "Reconciling", "True")
    until(lambda: rolled_back_gauge(op, namespace) == 0.0, "the operator exports RolledBack=0")


def scrape_feedback(runtimes: list[RuntimeProcess]) -> dict[tuple[str, str], float]:
    """(family, revision) -> count of every ``kubeserve_feedback_*`` sample, summed over
    the /metrics of all runtimes (feedback may be scored on any replica)."""
    counts: dict[tuple[str, str], float] = {}
    for runtime in runtimes:
        for metric in text_string_to_metric_families(httpx.get(runtime.metrics_url).text):
            for sample in metric.samples:
                if sample.name.startswith("kubeserve_feedback_") and "version" in sample.labels:
                    key = (sample.name, sample.labels["version"])
                    counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def predict_and_truths(runtime: RuntimeProcess, rows: Any, truths: Any) -> tuple[float, list[Any]]:
    """V2 predictions of ``rows`` in chunks; return the accuracy and the feedback items."""
    right, items = 0, []
    for start in range(0, len(rows), 30):
        chunk, truth = rows[start : start + 30], truths[start : start + 30].tolist()
        body = {
            "inputs": [
                {
                    "name": "x",
                    "shape": list(chunk.shape),
                    "datatype": "FP64",
                    "data": chunk.tolist(),
                }
            ]
        }
        answer = httpx.post(f"{runtime.url}/v2/models/iris/infer", json=body).json()
        right += sum(p == t for p, t in zip(answer["outputs"][0]["data"], truth, strict=True))
        items.append({"token": answer["parameters"][FEEDBACK_PARAMETER], "truth": truth})
    return right / len(rows), items


def test_progressive_rollout_rolls_back_a_less_accurate_canary(
    api_client: client.ApiClient,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    prometheus: FakePrometheus,
    tmp_path: Path,
) -> None:
    """Quality gate: the analysis waits for feedback; the test then sends truths for real
    runtimes' predictions (stable = logistic regression, canary = a one-split tree), each
    scored on the other replica; the canary fails minAccuracy and maxQualityDrop and rolls
    back with a reason naming accuracy and the values the test computed itself.

    The fake answers feedback queries from one scrape of both runtimes, published in an
    order that keeps every reading consistent although the operator's queries arrive
    one by one: correct counts first, then the stable's scored count, then the
    canary's (until the canary's scored count is there, every reading waits)."""
    features, labels = load_iris(return_X_y=True)
    models = {
        "good": LogisticRegression(max_iter=500).fit(features, labels),
        "bad": DecisionTreeClassifier(max_depth=1, random_state=0).fit(features, labels),
    }
    for name, model in models.items():
        (tmp_path / name).mkdir()
        joblib.dump(model, tmp_path / name / "model.joblib")
    key = tmp_path / "feedback-key"
    key.write_text(secrets.token_hex(32))
    published: dict[tuple[str, str], float] = {}
    prometheus.feedback = lambda family, revision: published.get((family, revision), 0.0)
    operator_factory(
        env=with_prometheus(prometheus, KUBESERVE_OPERATOR_RECONCILE_INTERVAL_SECONDS="1")
    )
    analysis = {
        "maxErrorRate": 0.01,
        "minRequests": 10,
        "failureThreshold": 1,
        "minAccuracy": 0.9,
        "maxQualityDrop": 0.05,
        "minFeedback": 100,
    }
    spec = progressive_spec("s3://m/v1", analysis, [25, 50])
    spec["feedback"] = {"secretRef": {"name": "iris-feedback"}}
    create(api_client, namespace, isvc("iris", spec))
    stable = revisions(wait_isvc(api_client, namespace, "iris", is_ready, "Ready"))["stable"]
    set_storage_uri(api_client, namespace, "iris", "s3://m/v2")
    canary = revisions(wait_isvc(api_client, namespace, "iris", canary_at(25), "canary at 25%"))[
        "canary"
    ]
    waiting = wait_isvc(
        api_client,
        namespace,
        "iris",
        lambda o: (
            "waiting for feedback: 0 of 100 scored"
            in ((condition(o, "RolloutProgressing") or {}).get("message") or "")
        ),
        "the analysis waiting for feedback",
    )
    assert canary_at(25)(waiting)
    runtimes = [
        RuntimeProcess(
            tmp_path / model, "iris", "--model-version", revision, "--feedback-key-file", str(key)
        )
        for model, revision in (("good", stable["hash"]), ("bad", canary["hash"]))
    ]
    with runtimes[0], runtimes[1]:
        stable_accuracy, stable_items = predict_and_truths(runtimes[0], features, labels)
        canary_accuracy, canary_items = predict_and_truths(runtimes[1], features, labels)
        for scorer, items in ((runtimes[1], stable_items), (runtimes[0], canary_items)):
            scored = httpx.post(f"{scorer.url}/v2/models/iris/feedback", json=items)
            assert scored.status_code == 200, scored.text
        counts = scrape_feedback(runtimes)
    total, correct = "kubeserve_feedback_total", "kubeserve_feedback_correct_total"
    assert counts[(total, stable["hash"])] == counts[(total, canary["hash"])] == len(labels)
    for revision in (stable["hash"], canary["hash"]):
        published[(correct, revision)] = counts[(correct, revision)]
    published[(total, stable["hash"])] = counts[(total, stable["hash"])]
    published[(total, canary["hash"])] = counts[(total, canary["hash"])]
    back = wait_isvc(
        api_client,
        namespace,
        "iris",
        lambda o: cond_is(o, "RolledBack", "True", "AnalysisFailed"),
        "rolled back",
    )
    assert canary_accuracy < 0.9 < stable_accuracy
    drop = stable_accuracy - canary_accuracy
    assert (condition(back, "RolledBack") or {})["message"] == (
        f"accuracy {canary_accuracy:.4g} < min 0.9; accuracy {canary_accuracy:.4g} is "
        f"{drop:.4g} below stable {stable_accuracy:.4g} > max drop 0.05 at step 25% "
        "(1 failed check)"
    )
    assert weights(api_client, namespace, "iris") == {stable["name"]: 100}
    shown = revisions(back)
    assert shown["canary"]["quality"] == {"scored": 150, "accuracy": round(canary_accuracy, 4)}
    assert shown["stable"]["quality"] == {"scored": 150, "accuracy": round(stable_accuracy, 4)}


def test_operator_killed_mid_rollout_resumes(
    api_client: client.ApiClient,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
    prometheus: FakePrometheus,
) -> None:
    """SIGKILL at step 2 of 3; a new operator continues from the state in status."""
    first = operator_factory(env=with_prometheus(prometheus))
    spec = progressive_spec("s3://m/v1", {"minRequests": 10}, [10, 30, 60])
    spec["rollout"]["interval"] = "3s"
    create(api_client, namespace, isvc("iris", spec))
    stable = revisions(wait_isvc(api_client, namespace, "iris", is_ready, "Ready"))["stable"]
    set_storage_uri(api_client, namespace, "iris", "s3://m/v2")
    at30 = wait_isvc(api_client, namespace, "iris", canary_at(30), "canary at 30%")
    first.kill()
    canary = revisions(at30)["canary"]
    uid = deployment(api_client, namespace, canary["name"]).metadata.uid
    assert at30["status"]["rollout"]["canary"]["step"] == 1

    operator_factory(env=with_prometheus(prometheus))
    seen: list[int] = []

    def promoted(obj: dict[str, Any]) -> bool:
        share = revisions(obj).get("canary", {}).get("trafficPercent")
        if share is not None:
            seen.append(share)
        return current(obj) and revisions(obj)["stable"]["hash"] == canary["hash"]

    done = wait_isvc(api_client, namespace, "iris", promoted, "promoted after the restart")
    assert seen
    assert min(seen) >= 30, seen  # never started over
    assert 60 in seen
    assert deployment(api_client, namespace, canary["name"]).metadata.uid == uid
    assert revisions(done)["previous"]["hash"] == stable["hash"]
    reasons = [e.reason for e in wait_event(api_client, namespace, "iris", "Promoted")]
    assert reasons.count("CanaryStarted") == 1
    assert reasons.count("Promoted") == 1


# --------------------------------------------------------------------------- A/B and mirror


def test_ab_variant_with_header_match_and_mirror(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    """Header rule first (marking its requests as header-routed), weighted default rule with
    a RequestMirror, all stored as applied."""
    spec = {
        "predictor": predictor("s3://m/a"),
        "variants": [
            {
                "name": "b",
                "weight": 20,
                "match": {"headers": {"x-model-variant": "b"}},
                "predictor": predictor("s3://m/b"),
            }
        ],
        "mirror": {"variant": "b", "percent": 10},
    }
    create(api_client, namespace, isvc("iris", spec))
    ready = wait_isvc(api_client, namespace, "iris", is_ready, "Ready")
    main = revisions(ready)["stable"]["name"]
    variants = {v["name"]: v for v in ready["status"]["variants"]}
    assert {k: v["weight"] for k, v in variants.items()} == {"b": 20, "predictor": 80}
    b = f"iris-b-{variants['b']['revision']}"
    assert deployment_names(api_client, namespace, "iris") == {main, b}

    def ref(name: str, weight: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {"group": "", "kind": "Service", "name": name, "port": 8080}
        if weight is not None:
            out["weight"] = weight
        return out

    everything = {"type": "PathPrefix", "value": "/"}
    # Exactly what the operator wrote: the API server added no defaults (no GitOps drift).
    assert route(api_client, namespace, "iris")["spec"] == {
        "parentRefs": [{"group": GATEWAY, "kind": "Gateway", "name": "kubeserve"}],
        "hostnames": [f"iris.{namespace}.example.com"],
        "rules": [
            {
                "matches": [
                    {
                        "path": everything,
                        "headers": [{"type": "Exact", "name": "x-model-variant", "value": "b"}],
                    }
                ],
                "backendRefs": [ref(b, 1)],
                "filters": [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {
                            "set": [{"name": ROUTED_HEADER, "value": ROUTED_BY_HEADER}]
                        },
                    }
                ],
            },
            {
                "matches": [{"path": everything}],
                "backendRefs": [ref(main, 80), ref(b, 20)],
                "filters": [
                    {
                        "type": "RequestMirror",
                        "requestMirror": {"backendRef": ref(b, None), "percent": 10},
                    }
                ],
            },
        ],
    }


# --------------------------------------------------------------------------- GitOps revert


def test_gitops_revert_reuses_the_previous_deployment(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess
) -> None:
    """Reverting the spec to the previous revision scales its kept Deployment up again."""
    spec = {"predictor": predictor("s3://m/v1"), "rollout": {"historyLimit": 5}}
    create(api_client, namespace, isvc("iris", spec))
    first = revisions(wait_isvc(api_client, namespace, "iris", is_ready, "Ready"))["stable"]
    uid = deployment(api_client, namespace, first["name"]).metadata.uid
    set_storage_uri(api_client, namespace, "iris", "s3://m/v2")
    second = revisions(
        wait_isvc(
            api_client,
            namespace,
            "iris",
            lambda o: is_ready(o) and revisions(o)["stable"]["hash"] != first["hash"],
            "v2 stable",
        )
    )["stable"]
    until(
        lambda: deployment(api_client, namespace, first["name"]).spec.replicas == 0,
        "v1 kept at zero replicas",
    )

    set_storage_uri(api_client, namespace, "iris", "s3://m/v1")
    back = wait_isvc(
        api_client,
        namespace,
        "iris",
        lambda o: is_ready(o) and revisions(o)["stable"]["hash"] == first["hash"],
        "v1 stable again",
    )
    reused = deployment(api_client, namespace, first["name"])
    assert reused.metadata.uid == uid
    assert reused.spec.replicas == 1
    assert weights(api_client, namespace, "iris") == {first["name"]: 100}
    assert revisions(back)["previous"]["hash"] == second["hash"]
    outcomes = [(h["hash"], h["outcome"]) for h in revisions(back)["history"]]
    assert outcomes == [
        (first["hash"], "Promoted"),
        (second["hash"], "Promoted"),
        (first["hash"], "Promoted"),
    ]
    wait_event(api_client, namespace, "iris", "RevisionReused")


# --------------------------------------------------------------------------- nginx mode


def ingresses(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """Ingresses of an InferenceService by name (V1Ingress)."""
    items = (
        client.NetworkingV1Api(api)
        .list_namespaced_ingress(namespace, label_selector=f"{LABEL}={name}")
        .items
    )
    return {i.metadata.name: i for i in items}


def backend(ingress: Any) -> str:
    """The Service an Ingress routes to."""
    return str(ingress.spec.rules[0].http.paths[0].backend.service.name)


NGINX_ENV = {"KUBESERVE_OPERATOR_INGRESS_MODE": "nginx"}


def test_nginx_canary_ingress(
    api_client: client.ApiClient,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    """A 10% canary in nginx mode: the main Ingress plus a canary Ingress weighted 10."""
    operator_factory(env=NGINX_ENV)
    stable, canary = start_manual_canary(api_client, namespace, replicas=1)
    found = ingresses(api_client, namespace, "iris")
    assert set(found) == {"iris", "iris-canary"}
    assert backend(found["iris"]) == stable
    assert backend(found["iris-canary"]) == canary
    canary_annotations = dict(found["iris-canary"].metadata.annotations)
    assert canary_annotations.pop(ANNOTATION_APPLIED_HASH)  # what the operator last applied
    assert canary_annotations == {
        f"{NGINX}/canary": "true",
        f"{NGINX}/canary-weight": "10",
        f"{NGINX}/canary-weight-total": "100",
    }
    assert set(found["iris"].metadata.annotations) == {ANNOTATION_APPLIED_HASH}
    assert cond_is(get(api_client, namespace, "iris"), "RoutesReady", "True")

    # canaryTrafficPercent 100 promotes: one Ingress to the new stable, the canary one goes.
    patch(api_client, namespace, "iris", {"spec": {"rollout": {"canaryTrafficPercent": 100}}})
    wait_isvc(
        api_client,
        namespace,
        "iris",
        lambda o: current(o) and revisions(o)["stable"]["name"] == canary,
        "canary promoted",
    )
    until(lambda: set(ingresses(api_client, namespace, "iris")) == {"iris"}, "canary Ingress gone")
    assert backend(ingresses(api_client, namespace, "iris")["iris"]) == canary


def test_nginx_refuses_what_it_cannot_express(
    api_client: client.ApiClient,
    namespace: str,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    """Two weighted variants: RoutesReady=False with the reason; workloads and the last
    good Ingress keep working."""
    operator_factory(env=NGINX_ENV)
    create(api_client, namespace, isvc("iris", {"predictor": predictor("s3://m/v1")}))
    main = revisions(wait_isvc(api_client, namespace, "iris", is_ready, "Ready"))["stable"]["name"]
    assert set(ingresses(api_client, namespace, "iris")) == {"iris"}
    variants = [
        {"name": n, "weight": 10, "predictor": predictor(f"s3://m/{n}")} for n in ("a", "b")
    ]
    patch(api_client, namespace, "iris", {"spec": {"variants": variants}})
    refused = wait_isvc(
        api_client,
        namespace,
        "iris",
        lambda o: cond_is(o, "RoutesReady", "False") and cond_is(o, "PredictorReady", "True"),
        "route refused, predictors ready",
    )
    routes_ready = condition(refused, "RoutesReady") or {}
    assert routes_ready["reason"] == "UnsupportedByIngress"
    message = routes_ready["message"]
    assert "ingress-nginx allows one canary per host" in message
    assert "use the Gateway API route mode" in message
    assert (condition(refused, "Ready") or {})["message"] == message
    assert cond_is(refused, "Stalled", "True", "UnsupportedByIngress")
    assert (condition(refused, "Stalled") or {})["message"] == message
    capture(refused, "route-refused")
    names = deployment_names(api_client, namespace, "iris")
    assert len(names) == 3
    assert main in names
    until(
        lambda: all(
            d.status.ready_replicas == 1
            for d in client.AppsV1Api(api_client)
            .list_namespaced_deployment(namespace, label_selector=f"{LABEL}=iris")
            .items
        ),
        "variant workloads ready",
    )
    kept = ingresses(api_client, namespace, "iris")
    assert set(kept) == {"iris"}
    assert backend(kept["iris"]) == main

    # Back to something nginx can express: the route is ready again.
    patch(api_client, namespace, "iris", {"spec": {"variants": variants[:1]}})
    fixed = wait_isvc(api_client, namespace, "iris", is_ready, "Ready again")
    assert cond_is(fixed, "RoutesReady", "True")
    found = ingresses(api_client, namespace, "iris")
    assert set(found) == {"iris", "iris-canary"}
    assert found["iris-canary"].metadata.annotations[f"{NGINX}/canary-weight"] == "10"
