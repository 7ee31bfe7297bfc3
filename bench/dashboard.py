"""Draw the chart's Grafana dashboard from a real Prometheus: the README's picture.

    python bench/dashboard.py [--seconds 120] [--out docs/dashboard.png]

Limits: this is not Grafana (it cannot be installed here): matplotlib draws every panel
of ``dashboards/kubeserve.json`` as lines, one per series, labelled by the panel's legend
format, with the panel's unit on the axis; no thresholds, colours or Grafana styling.
Needs the cached Prometheus (``kubeserve cluster build``) and the ``dev`` extra. A
picture, not a test: ``tests/runtime/test_prometheus_analysis.py`` is what proves every
query returns data.

Scenario, on loopback, with the pieces the tests use: InferenceService ``ml/iris`` has a
stable revision ``v1`` and a canary ``v2`` (``kubeserve-runtime serve`` processes with a
custom handler, a shared feedback key and a reference profile), scraped every second by
the pinned Prometheus with the target labels of a Kubernetes scrape, plus a real
operator metrics registry over HTTP. Four client threads send requests of 1-8 rows; the
canary gets 10%, then 30%, then 50% of them, answers slower, fails 8% of its rows and is
right less often; feature ``petal_width`` drifts as time goes on; every answer gets its
ground truth back as feedback; the canary's payload logger has a one-record queue and no
receiver, so it drops events. The model is a classifier, so the regression panel shows
"No data", as Grafana would. After 80% of the run the "operator" marks the canary
rolled back (its conditions change) and the stable revision takes all traffic.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from prometheus_client import start_http_server

from kubeserve import dashboard
from kubeserve.controller.metrics import OperatorMetrics
from kubeserve.devcluster.prometheus import PrometheusServer, Target, pod_target
from kubeserve_runtime import contract
from kubeserve_runtime.metrics.drift import PROFILE_FILE, build_profile
from kubeserve_runtime.testing import RuntimeProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE, NAME = "ml", "iris"
STABLE, CANARY = "v1", "v2"
FEATURES = ["petal_length", "petal_width"]
HANDLER = """
import time

import numpy as np

SLEEP_S, FAIL, WRONG = {sleep}, {fail}, {wrong}
rng = np.random.default_rng()


class Handler:
    def predict(self, feed):
        x = feed["x"]
        time.sleep(SLEEP_S * len(x))
        if rng.random() < FAIL * len(x):
            raise RuntimeError("canary bug")
        label = (x[:, 0] + x[:, 1] > 1.0).astype(np.int64)
        flip = rng.random(len(x)) < WRONG
        return np.where(flip, 1 - label, label)
"""


def model_dir(folder: Path, sleep: float, fail: float, wrong: float) -> Path:
    """A handler model whose answers take ``sleep`` s a row, fail with probability ``fail``
    a row and are wrong with probability ``wrong``; its profile is the training data's."""
    folder.mkdir()
    (folder / "handler.py").write_text(HANDLER.format(sleep=sleep, fail=fail, wrong=wrong))
    training = np.random.default_rng(0).uniform(0, 1, size=(2000, 2))
    profile = build_profile(training, FEATURES, input_name="x", bins=5)
    (folder / PROFILE_FILE).write_text(json.dumps(profile))
    return folder


@contextmanager
def operator_metrics(metrics: OperatorMetrics) -> Iterator[str]:
    """Serve ``metrics`` over HTTP; yield ``host:port``."""
    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def conditions(rolled_back: bool) -> list[dict[str, str]]:
    """The rollout conditions the operator writes while the canary runs, or after it."""
    return [
        {"type": "Ready", "status": "True"},
        {"type": "RolloutProgressing", "status": "False" if rolled_back else "True"},
        {"type": "RolledBack", "status": "True" if rolled_back else "False"},
    ]


class Traffic:
    """Client threads sending requests and their ground truth until ``stop`` is set."""

    def __init__(self, runtimes: dict[str, RuntimeProcess], seconds: float) -> None:
        self.runtimes = runtimes
        self.seconds = seconds
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.rolled_back = threading.Event()

    def canary_share(self) -> float:
        """10%, 30%, then 50% of requests; none once rolled back."""
        if self.rolled_back.is_set():
            return 0.0
        elapsed = (time.monotonic() - self.started) / self.seconds
        return 0.1 if elapsed < 0.3 else 0.3 if elapsed < 0.55 else 0.5

    def rows(self, rng: random.Random) -> list[list[float]]:
        """1-8 rows; petal_width moves from [0, 1) towards [0.5, 1.5) over the run."""
        shift = 0.5 * min(1.0, (time.monotonic() - self.started) / self.seconds)
        return [
            [rng.random(), rng.random() + shift * rng.random() * 2]
            for _ in range(rng.randint(1, 8))
        ]

    def client(self, seed: int) -> None:
        """One client: predict, then send each answer's truth back."""
        rng = random.Random(seed)
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                revision = CANARY if rng.random() < self.canary_share() else STABLE
                runtime = self.runtimes[revision]
                rows = self.rows(rng)
                body = {
                    "inputs": [
                        {"name": "x", "shape": [len(rows), 2], "datatype": "FP32", "data": rows}
                    ]
                }
                answer = http.post(f"{runtime.url}/v2/models/{NAME}/infer", json=body)
                if answer.status_code != 200:
                    continue
                truth = [int(a + b > 1.0) for a, b in rows]
                item = {"token": answer.headers[contract.FEEDBACK_HEADER], "truth": truth}
                http.post(f"{runtime.url}/v2/models/{NAME}/feedback", json=[item])


def target(revision: str, runtime: RuntimeProcess) -> Target:
    """The runtime as a Kubernetes scrape labels one of its pods."""
    return pod_target(runtime.metrics_port, NAMESPACE, NAME, "predictor", revision)


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's legend format filled in with a series' labels."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), template).strip()


def collect(prometheus: PrometheusServer, start: float, end: float) -> list[dict[str, Any]]:
    """Every panel's series over [start, end]: title, unit and (legend, t, values) lines."""
    board = json.loads((ROOT / dashboard.FILE).read_text())
    panels, row = [], ""
    for panel in board["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        lines = []
        for target_ in panel["targets"]:
            promql = dashboard.expand(target_["expr"], NAMESPACE, NAME, rate_interval="15s")
            for series in prometheus.query_range(promql, start, end, step=2):
                t = [float(ts) - start for ts, _ in series["values"]]
                v = [float(value) for _, value in series["values"]]
                lines.append((legend(target_["legendFormat"], series["metric"]), t, v))
        panels.append(
            {
                "title": f"{row} · {panel['title']}",
                "unit": panel["fieldConfig"]["defaults"]["unit"],
                "lines": lines,
            }
        )
    return panels


UNITS = {"reqps": "req/s", "percentunit": "share", "s": "seconds", "short": ""}


def plot(panels: list[dict[str, Any]], path: Path) -> None:
    """Draw the panels two per row, like the dashboard's grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (len(panels) + 1) // 2
    figure, axes = plt.subplots(rows, 2, figsize=(13, 3.1 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for label, t, v in panel["lines"]:
            ax.plot(t, v, label=label, linewidth=1.2)
        if not panel["lines"]:  # as Grafana shows it (the regression panel, for a classifier)
            ax.text(0.5, 0.5, "No data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(panel["title"], fontsize=10, loc="left")
        ax.set_ylabel(UNITS.get(panel["unit"], panel["unit"]), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if panel["lines"]:
            ax.legend(fontsize=6, loc="upper left", ncol=2)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("seconds", fontsize=8)
    figure.suptitle(f"kubeserve / InferenceService {NAMESPACE}/{NAME}", fontsize=12)
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main() -> int:
    """Run the scenario, query every panel, write the PNG."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the traffic")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    args = parser.parse_args()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dashboard-")))
        key = folder / "feedback-key"
        key.write_text(secrets.token_urlsafe(32))
        env = {"KUBESERVE_INLINE_INFERENCE_MAX_MS": "0"}
        common = ("--feedback-key-file", str(key), "--feedback-task", "classification")
        dead = {"sinks": [{"http": {"url": f"http://127.0.0.1:{free_port()}/"}}]}
        logger = {**dead, "queue_size": 1, "flush_timeout_seconds": 0}
        runtimes = {
            STABLE: stack.enter_context(
                RuntimeProcess(
                    model_dir(folder / STABLE, 0.001, 0.0, 0.05),
                    NAME,
                    "--model-version",
                    STABLE,
                    *common,
                    env=env,
                    grpc=False,
                )
            ),
            CANARY: stack.enter_context(
                RuntimeProcess(
                    model_dir(folder / CANARY, 0.004, 0.01, 0.3),
                    NAME,
                    "--model-version",
                    CANARY,
                    *common,
                    "--payload-logger",
                    json.dumps(logger),
                    env=env,
                    grpc=False,
                )
            ),
        }
        metrics = OperatorMetrics()
        metrics.record_conditions(NAMESPACE, NAME, conditions(rolled_back=False))
        operator = stack.enter_context(operator_metrics(metrics))
        targets = [target(r, p) for r, p in runtimes.items()] + [Target(operator)]
        (folder / "prometheus").mkdir()
        prometheus = stack.enter_context(PrometheusServer(folder / "prometheus", targets))
        prometheus.wait_targets_up()
        start = time.time()
        traffic = Traffic(runtimes, args.seconds)
        clients = [threading.Thread(target=traffic.client, args=(i,)) for i in range(4)]
        for thread in clients:
            thread.start()
        traffic.stop.wait(0.8 * args.seconds)
        traffic.rolled_back.set()
        metrics.record_conditions(NAMESPACE, NAME, conditions(rolled_back=True))
        traffic.stop.wait(0.2 * args.seconds)
        traffic.stop.set()
        for thread in clients:
            thread.join()
        time.sleep(2)  # two more scrapes of the last counts
        panels = collect(prometheus, start, time.time())
    plot(panels, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
