"""A real Prometheus on loopback that scrapes given targets: the tests' metrics backend.

Limits first: static targets only (no Kubernetes service discovery: the binary is built
with ``remove_all_sd``), no web UI (built without ``builtinassets``), data in a scratch
folder that dies with the process. The labels a Kubernetes scrape configuration would
attach to a runtime pod (``namespace``, ``pod``, the pod's ``serving.kubeserve.io/*``
labels as ``serving_kubeserve_io_*``, see :data:`TARGET_LABELS`) are given per target,
so queries and rules see the series they see in a cluster.

The binary is the pinned ``prometheus`` built from the Go module proxy like the control
plane (``versions.PROMETHEUS``). Readiness is Prometheus' own ``/-/ready``; "scraped" is
its targets API reporting every target ``up`` after at least one scrape.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import yaml
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from kubeserve.devcluster import build, ports, processes

START_TIMEOUT = 60.0
JOB = "kubeserve-runtime"

TARGET_LABELS = (
    "namespace",
    "pod",
    "serving_kubeserve_io_inferenceservice",
    "serving_kubeserve_io_revision",
    "serving_kubeserve_io_variant",
)
"""Target labels of a runtime pod under the usual Kubernetes scrape configurations: the
``kubernetes-pods`` job's ``labelmap`` of pod labels and a PodMonitor's
``podTargetLabels`` both write ``serving.kubeserve.io/variant`` as
``serving_kubeserve_io_variant``."""


@dataclass(frozen=True)
class Target:
    """One scrape target: ``host:port`` of a /metrics endpoint and its target labels."""

    address: str
    labels: dict[str, str] = field(default_factory=dict)


def pod_target(
    metrics_port: int, namespace: str, name: str, component: str, revision: str
) -> Target:
    """A runtime on loopback labelled as a Kubernetes scrape labels one of its pods."""
    pod = f"{name}-{component}-{revision}-0"
    values = (namespace, pod, name, revision, component)
    return Target(f"127.0.0.1:{metrics_port}", dict(zip(TARGET_LABELS, values, strict=True)))


def scrape_config(
    targets: list[Target], interval: str, rule_files: list[Path] | None = None
) -> dict[str, Any]:
    """Return the prometheus.yml that scrapes ``targets`` every ``interval``."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files or []],
        "scrape_configs": [
            {
                "job_name": JOB,
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": [
                    {"targets": [target.address], "labels": target.labels} for target in targets
                ],
            }
        ],
    }


class PrometheusServer:
    """A running ``prometheus`` scraping static targets, with its data in ``folder``."""

    def __init__(
        self,
        folder: Path,
        targets: list[Target],
        *,
        interval: str = "1s",
        rule_files: list[Path] | None = None,
    ) -> None:
        self.folder = folder
        self.targets = targets
        self.port = ports.pick_ports({"prometheus": 0})["prometheus"]
        self.url = f"http://{ports.HOST}:{self.port}"
        self.config = folder / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(scrape_config(targets, interval, rule_files)))
        self.log_path = folder / "prometheus.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def start(self) -> Self:
        """Start the server and wait until ``/-/ready`` answers 200."""
        argv = [
            str(build.binary("prometheus")),
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.folder / 'data'}",
            f"--web.listen-address={ports.HOST}:{self.port}",
        ]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self._wait(self._ready, "Prometheus /-/ready")
        return self

    def _ready(self) -> bool:
        """Whether ``/-/ready`` answers 200 (fails with the log if the process died)."""
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise RuntimeError(
                f"prometheus exited with {self._proc.returncode}:\n"
                f"{processes.log_tail(self.log_path)}"
            )
        try:
            return self.http.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def _wait(
        self, condition: Callable[[], bool], what: str, timeout: float = START_TIMEOUT
    ) -> None:
        """Poll ``condition`` until true; a timeout names ``what`` and shows the log."""
        try:
            Retrying(
                stop=stop_after_delay(timeout),
                wait=wait_fixed(0.1),
                retry=retry_if_result(lambda ok: not ok),
            )(condition)
        except RetryError as exc:
            raise TimeoutError(
                f"{what}: not true after {timeout:g}s\n{processes.log_tail(self.log_path)}"
            ) from exc

    def targets_health(self) -> dict[str, str]:
        """Return each active target's ``host:port`` -> health (``up``, ``down``, ``unknown``)."""
        answer = self.http.get("/api/v1/targets", params={"state": "active"})
        answer.raise_for_status()
        active = answer.json()["data"]["activeTargets"]
        return {item["labels"]["instance"]: item["health"] for item in active}

    def wait_targets_up(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until every target has been scraped successfully at least once."""
        wanted = {target.address for target in self.targets}

        def all_up() -> bool:
            health = self.targets_health()
            return all(health.get(address) == "up" for address in wanted)

        self._wait(all_up, f"targets {sorted(wanted)} up", timeout)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant query; return the result list (raise on an error answer)."""
        return self._result("/api/v1/query", {"query": promql})

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        """Run a range query (Unix seconds); return the matrix (``values`` per series)."""
        params = {"query": promql, "start": start, "end": end, "step": step}
        return self._result("/api/v1/query_range", params)

    def _result(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The ``data.result`` of a query answer (raise on an error answer)."""
        body: dict[str, Any] = self.http.get(path, params=params).json()
        if body.get("status") != "success":
            raise RuntimeError(
                f"query {params['query']!r}: {body.get('errorType')}: {body.get('error')}"
            )
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the server and wait; SIGKILL after ``grace`` seconds."""
        self.http.close()
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(grace)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
