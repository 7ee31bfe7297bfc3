"""Operator scale benchmark: many InferenceServices against the local control plane.

    python bench/operator_scale.py [--count 200] [--idle 120]

Starts (or reuses, via $KUBECONFIG) the local control plane, runs ``kubeserve run`` as
a subprocess, applies ``--count`` InferenceServices in one namespace and reports:
seconds until all are Ready, API requests per reconcile by verb (the operator counts
every request it sends), write requests during ``--idle`` seconds of idling (goal: 0)
and the operator's peak RSS. Writes bench/results/operator_scale.json and a PNG of
Ready InferenceServices over time. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config

from kubeserve.controller.process import OperatorProcess
from kubeserve.controller.watching import is_ready
from kubeserve.devcluster import session

RESULTS = Path(__file__).resolve().parent / "results"
GROUP, VERSION, PLURAL = "serving.kubeserve.io", "v1alpha1", "inferenceservices"


def manifest(index: int) -> dict[str, Any]:
    """The index-th InferenceService (autoscaled, so each gets an HPA and a PDB)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": f"model-{index:04d}"},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": f"s3://bench/model-{index}",
                },
                "minReplicas": 2,
                "maxReplicas": 4,
            }
        },
    }


def ready_names(custom: client.CustomObjectsApi, namespace: str) -> set[str]:
    """Names of Ready InferenceServices."""
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    return {o["metadata"]["name"] for o in items if is_ready(o)}


def run(count: int, idle: float, workdir: Path) -> dict[str, Any]:
    """Run the benchmark and return its results."""
    with session.cluster(workdir / "cluster") as kubeconfig:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        namespace = session.create_namespace(api, f"bench-{os.getpid()}")
        custom = client.CustomObjectsApi(api)
        operator = OperatorProcess(kubeconfig, workdir / "operator.log", namespaces=[namespace])
        operator.start()
        try:
            started = time.monotonic()
            for i in range(count):
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, manifest(i)
                )
            applied = time.monotonic() - started
            timeline: list[tuple[float, int]] = []
            while True:
                ready = len(ready_names(custom, namespace))
                timeline.append((time.monotonic() - started, ready))
                if ready == count:
                    break
                if time.monotonic() - started > 1800:
                    raise TimeoutError(f"only {ready}/{count} Ready after 30 minutes")
                time.sleep(1.0)
            all_ready = time.monotonic() - started
            time.sleep(5)  # let the last status writes land before the idle window
            busy = operator.api_requests()
            reconciles = operator.metrics().get(
                ("kubeserve_reconcile_total", (("result", "success"),)), 0.0
            )
            writes_before = operator.writes()
            time.sleep(idle)
            idle_writes = operator.writes() - writes_before
            rss = operator.peak_rss_bytes()
        finally:
            operator.stop()
            session.delete_namespace(api, namespace)
    per_reconcile: dict[str, float] = {}
    for key, value in busy.items():
        verb = key.split()[0]
        per_reconcile[verb] = per_reconcile.get(verb, 0.0) + value / max(reconciles, 1.0)
    return {
        "count": count,
        "seconds_to_apply": round(applied, 2),
        "seconds_until_all_ready": round(all_ready, 2),
        "reconciles": reconciles,
        "api_requests_by_verb_and_kind": busy,
        "api_requests_per_reconcile_by_verb": {k: round(v, 3) for k, v in per_reconcile.items()},
        "idle_seconds": idle,
        "writes_while_idle": idle_writes,
        "operator_peak_rss_mib": None if rss is None else round(rss / 2**20, 1),
        "timeline": timeline,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """Ready InferenceServices over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [t for t, _ in result["timeline"]]
    ys = [n for _, n in result["timeline"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(xs, ys)
    ax.set_xlabel("seconds since the first apply")
    ax.set_ylabel("Ready InferenceServices")
    ax.set_title(f"kubeserve operator: {result['count']} InferenceServices")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, write JSON and PNG, print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--idle", type=float, default=120.0, help="idle seconds to watch writes")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kubeserve-bench-") as tmp:
        result = run(args.count, args.idle, Path(tmp))
    result["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "load_average_after": os.getloadavg(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "operator_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, RESULTS / "operator_scale.png")
    summary = {
        k: v for k, v in result.items() if k not in ("timeline", "api_requests_by_verb_and_kind")
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
