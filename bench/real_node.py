"""Real-node benchmark: apply -> first prediction, against the floor of trivial pods, and
prediction latency through the Gateway beside the Service and the pod itself.

    python bench/real_node.py [--runs 5] [--requests 2000]

Limits first: it needs what the real-node tests need (root, the node's packages and
builds, the runtime image; Traefik for the Gateway column) and the machine's one real
node, which it starts in a temporary folder and stops. The operator runs as a host
process watching the benchmark's namespaces (the tests install it with helm; where it
runs does not change what is timed: pods starting, probes, the model's download and
load). Requests are sequential from one keep-alive client on the same machine, so the
latencies are per-request costs on a shared 2-core host, not throughput; the load
average is recorded beside them. Writes bench/results/real_node.json and a PNG. A
benchmark, not a test: nothing here asserts a time.

Measured, each ``--runs`` times, each in a fresh namespace:
- ``pause``: create a pod of the pause image -> the pod is Ready (no probe);
- ``runtime-image``: a pod of the runtime image running ``python -m http.server`` with a
  1 s readiness probe -> the host gets an HTTP answer from the pod (the floor of a
  Python server in that image on this node: sandbox, container start, interpreter);
- ``iris``: create the iris InferenceService (examples/01, model in the node's S3 store)
  -> the first correct V2 prediction through its ClusterIP Service (the operator's
  reconcile, the storage initializer's download, model load, probes, endpoints).
Then ``--requests`` V2 predictions to iris each way: pod IP, ClusterIP, Gateway (Host).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client

from kubeserve.controller.process import OperatorProcess
from kubeserve.devcluster import gateway, session
from kubeserve.devcluster.containerd import PAUSE_IMAGE
from kubeserve.images import catalog
from soak import machine

RESULTS = Path(__file__).resolve().parent / "results"
IRIS = Path(__file__).resolve().parents[1] / "examples" / "01-sklearn-iris"
GROUP, VERSION, PLURAL = "serving.kubeserve.io", "v1alpha1", "inferenceservices"
BODY = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [6.7, 3.0, 5.2, 2.3]}
    ]
}
POLL = 0.1
TIMEOUT = 300.0
SECRET = "iris-storage"


def until(check: Callable[[], bool], what: str) -> float:
    """Poll ``check`` every POLL seconds; return the monotonic time it first held."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(POLL)
    raise TimeoutError(f"{what} not reached in {TIMEOUT:.0f}s")


def pod_ready(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    """Return whether the pod is Ready."""
    pod = core.read_namespaced_pod(name, namespace)
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def answers(url: str, body: dict[str, Any] | None = None) -> bool:
    """Return whether ``url`` answers 200 (POST ``body`` when given) right now."""
    try:
        if body is None:
            return httpx.get(url, timeout=2).status_code == 200
        return httpx.post(url, json=body, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def pause_pod() -> dict[str, Any]:
    """A pod of the pause image: Ready as soon as its container runs."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "floor"},
        "spec": {
            "containers": [{"name": "pause", "image": PAUSE_IMAGE, "imagePullPolicy": "Never"}],
            "terminationGracePeriodSeconds": 1,
        },
    }


def server_pod(image: str) -> dict[str, Any]:
    """A pod of the runtime image serving /tmp with Python's http.server on 8080."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "floor"},
        "spec": {
            "containers": [
                {
                    "name": "server",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-m", "http.server", "8080", "--directory", "/tmp"],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                }
            ],
            "terminationGracePeriodSeconds": 1,
        },
    }


def time_pod(api: client.ApiClient, namespace: str, pod: dict[str, Any], http: bool) -> float:
    """Create ``pod``; return seconds until it is Ready (and answers HTTP when ``http``)."""
    core = client.CoreV1Api(api)
    start = time.monotonic()
    core.create_namespaced_pod(namespace, pod)
    ready = until(lambda: pod_ready(core, namespace, "floor"), "floor pod Ready")
    if http:
        ip = core.read_namespaced_pod("floor", namespace).status.pod_ip
        ready = until(lambda: answers(f"http://{ip}:8080/"), "floor pod answering")
    return ready - start


def service_ip(core: client.CoreV1Api, namespace: str, name: str) -> str | None:
    """Return the Service's ClusterIP, or None while it does not exist."""
    try:
        return str(core.read_namespaced_service(name, namespace).spec.cluster_ip)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def time_iris(api: client.ApiClient, namespace: str, isvc: dict[str, Any]) -> float:
    """Create the iris InferenceService; return seconds until its Service predicts right."""
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)

    def predicts() -> bool:
        ip = service_ip(core, namespace, "iris")
        if ip is None:
            return False
        url = f"http://{ip}:8080/v2/models/iris/infer"
        try:
            answer = httpx.post(url, json=BODY, timeout=5)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [2]

    start = time.monotonic()
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, isvc)
    return until(predicts, "first iris prediction") - start


def latency(url: str, requests: int, headers: dict[str, str] | None = None) -> dict[str, float]:
    """Send ``requests`` sequential V2 predictions on one connection; milliseconds p50/p99."""
    samples: list[float] = []
    with httpx.Client(headers=headers, timeout=10) as http:
        for _ in range(50):  # warm-up: connection, first-call paths
            http.post(url, json=BODY).raise_for_status()
        for _ in range(requests):
            start = time.perf_counter()
            http.post(url, json=BODY).raise_for_status()
            samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "requests": requests,
        "p50_ms": round(samples[len(samples) // 2], 2),
        "p99_ms": round(samples[int(len(samples) * 0.99)], 2),
        "mean_ms": round(statistics.fmean(samples), 2),
    }


def summary(samples: list[float]) -> dict[str, Any]:
    """p50, min, max of seconds, and the samples."""
    return {
        "p50_s": round(statistics.median(samples), 2),
        "min_s": round(min(samples), 2),
        "max_s": round(max(samples), 2),
        "samples_s": [round(s, 2) for s in samples],
    }


def measure(
    real: session.RealNodeSession, work: Path, runtime: str, runs: int, requests: int
) -> dict[str, Any]:
    """Run every measurement on the real node; return the results."""
    script = [sys.executable, str(IRIS / "make_model.py"), "--out", str(work / "model")]
    subprocess.run(script, check=True)
    stored = real.store.upload(work / "model", "bench/iris")
    isvc = stored.apply_to(yaml.safe_load((IRIS / "isvc.yaml").read_text()), SECRET)
    api = real.api_client()
    namespaces = [f"bench-{kind}-{i}" for kind in ("pause", "server", "iris") for i in range(runs)]
    for name in namespaces:
        session.create_namespace(api, name)
    env = {"KUBESERVE_OPERATOR_GATEWAY_NAMESPACE": gateway.GATEWAY_NAMESPACE}
    log = work / "operator.log"
    operator = OperatorProcess(real.kubeconfig, log, namespaces=namespaces, env=env)
    times: dict[str, list[float]] = {"pause": [], "runtime-image": [], "iris": []}
    try:
        with operator:
            for i in range(runs):
                times["pause"].append(time_pod(api, f"bench-pause-{i}", pause_pod(), False))
                times["runtime-image"].append(
                    time_pod(api, f"bench-server-{i}", server_pod(runtime), True)
                )
                namespace = f"bench-iris-{i}"
                secret = stored.secret(SECRET, namespace)
                client.CoreV1Api(api).create_namespaced_secret(namespace, secret)
                times["iris"].append(time_iris(api, namespace, isvc))
                print({kind: round(values[-1], 2) for kind, values in times.items()})
                if i < runs - 1:  # keep the last iris to measure latency on it
                    session.delete_namespace(api, namespace)
            paths = latency_paths(real, api, f"bench-iris-{runs - 1}")
            print(f"measuring latency on {', '.join(paths)} ({requests} requests each)")
            load_before = os.getloadavg()
            latencies = {
                path: latency(url, requests, headers) for path, (url, headers) in paths.items()
            }
    finally:
        for name in namespaces:
            session.delete_namespace(api, name)
        api.close()
    return {
        "apply_to_ready_or_first_prediction": {kind: summary(v) for kind, v in times.items()},
        "latency": latencies,
        "load_average_before_latency": [round(v, 2) for v in load_before],
    }


def latency_paths(
    real: session.RealNodeSession, api: client.ApiClient, namespace: str
) -> dict[str, tuple[str, dict[str, str] | None]]:
    """Return the iris prediction URL (and headers) per path: pod, Service, Gateway."""
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(
        namespace, label_selector="serving.kubeserve.io/inferenceservice=iris"
    ).items
    path = "/v2/models/iris/infer"
    paths: dict[str, tuple[str, dict[str, str] | None]] = {
        "pod": (f"http://{pods[0].status.pod_ip}:8080{path}", None),
        "service": (f"http://{service_ip(core, namespace, 'iris')}:8080{path}", None),
    }
    if real.gateway is not None:
        obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "iris"
        )
        host = httpx.URL(obj["status"]["url"]).host
        url = f"{real.gateway.url}{path}"
        until(lambda: answers_with_host(url, host), "the Gateway routing to iris")
        paths["gateway"] = (url, {"Host": host})
    return paths


def answers_with_host(url: str, host: str) -> bool:
    """Return whether the Gateway answers a prediction for ``host`` right now."""
    try:
        return httpx.post(url, json=BODY, headers={"Host": host}, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def plot(data: dict[str, Any], path: Path) -> None:
    """Two panels: start-up seconds per kind, latency p50/p99 per path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    starts = data["apply_to_ready_or_first_prediction"]
    kinds = list(starts)
    for index, kind in enumerate(kinds):
        samples = starts[kind]["samples_s"]
        left.scatter([index] * len(samples), samples, alpha=0.6)
        left.hlines(starts[kind]["p50_s"], index - 0.3, index + 0.3, color="black")
    left.set_xticks(range(len(kinds)), kinds)
    left.set_ylabel("seconds (create -> Ready / first answer)")
    left.set_title("start-up on the real node (line: p50)")
    lat = data["latency"]
    names = list(lat)
    x = range(len(names))
    right.bar([i - 0.2 for i in x], [lat[n]["p50_ms"] for n in names], 0.4, label="p50")
    right.bar([i + 0.2 for i in x], [lat[n]["p99_ms"] for n in names], 0.4, label="p99")
    right.set_xticks(list(x), names)
    right.set_ylabel("ms per V2 prediction")
    right.set_title("iris latency by path (sequential, keep-alive)")
    right.legend()
    fig.suptitle(f"{data['machine']['cpus']} CPUs, load {data['machine']['load_average_1_5_15']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    """Start the real node, measure, write the results, stop the node."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="start-ups timed per kind")
    parser.add_argument("--requests", type=int, default=2000, help="predictions per path")
    args = parser.parse_args()
    from kubeserve.devcluster import node

    reasons = node.host_reasons()
    if reasons:
        print("no real node on this host: " + "; ".join(reasons), file=sys.stderr)
        return 1
    runtime = catalog.build_image("runtime", log=print).reference  # the node imports it
    machine_now = machine()
    with tempfile.TemporaryDirectory(prefix="kubeserve-bench-") as tmp:
        work = Path(tmp)
        with session.real_node(work / "node") as real:
            results = measure(real, work, runtime, args.runs, args.requests)
    data = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_now,
        "runs": args.runs,
        **results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "real_node.json").write_text(json.dumps(data, indent=2) + "\n")
    plot(data, RESULTS / "real_node.png")
    print(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
