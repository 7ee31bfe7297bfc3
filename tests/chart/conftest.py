"""Fixtures of the chart tests: the chart folder, a renderer built on the real helm, and
the operator run as the chart's pod would run it (no image can be built here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from kubeserve.chart import helm
from kubeserve.controller.process import free_port

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

CHART = Path(__file__).resolve().parents[2]

Render = Callable[..., list[dict[str, Any]]]
"""helm template -> objects; keyword arguments as in kubeserve.chart.helm.template."""


@pytest.fixture(scope="session")
def chart() -> Path:
    """Return the chart folder (the repository root)."""
    return CHART


@pytest.fixture(scope="session")
def render(helm_binary: Path) -> Render:
    """Return a function that runs `helm template` and returns the rendered objects."""

    def run(
        values: Mapping[str, str] | None = None,
        *,
        values_files: tuple[Path, ...] = (),
        namespace: str = helm.NAMESPACE,
        release: str = helm.RELEASE,
        include_crds: bool = False,
    ) -> list[dict[str, Any]]:
        text = helm.template(
            helm_binary,
            CHART,
            release=release,
            namespace=namespace,
            values=values,
            values_files=values_files,
            include_crds=include_crds,
        )
        return [obj for obj in yaml.safe_load_all(text) if obj]

    return run


def token_kubeconfig(admin: Path, token: str, path: Path) -> Path:
    """Write a kubeconfig for the admin's cluster that authenticates with `token` only."""
    config = yaml.safe_load(admin.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])[
        "context"
    ]
    cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "operator",
                        "context": {"cluster": cluster["name"], "user": "operator"},
                    }
                ],
                "current-context": "operator",
            }
        )
    )
    return path


class PodOperator:
    """`kubeserve run` started as the chart's pod runs it: the Deployment's command and args,
    the ConfigMap as environment, and a ServiceAccount token as its only credential."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.metrics_port, self.health_port = free_port(), free_port()
        self.log_path = log_path
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("KUBESERVE_OPERATOR_", "KUBECONFIG"))
        }
        ports = {
            "KUBESERVE_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "KUBESERVE_OPERATOR_HEALTH_PORT": str(self.health_port),
            "KUBESERVE_OPERATOR_BIND_ADDRESS": "127.0.0.1",
        }
        executable = Path(sys.executable).with_name(command[0])
        with log_path.open("w") as log:
            self.process = subprocess.Popen(
                [str(executable), *command[1:]],
                env=base | dict(env) | ports,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def get(self, path: str) -> httpx.Response:
        """GET a path of the operator's health server."""
        return httpx.get(f"http://127.0.0.1:{self.health_port}{path}", timeout=5)

    def metrics(self) -> str:
        """The operator's /metrics text."""
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def log(self) -> str:
        """Everything the operator logged so far."""
        return self.log_path.read_text(errors="replace")

    def assert_never_forbidden(self) -> None:
        """The operator never got a 403: its RBAC covers every call it made."""
        log = self.log()
        assert "Forbidden" not in log, log[-4000:]
        assert " 403" not in log, log[-4000:]

    def stop(self) -> None:
        """SIGTERM (as the kubelet does), SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


StartPodOperator = Callable[[str, str, Sequence[str], Mapping[str, str]], PodOperator]
"""(namespace, service account, command + args, env) -> a running PodOperator."""


@pytest.fixture
def pod_operator(
    kubeconfig: Path, api_client: ApiClient, tmp_path: Path
) -> Iterator[StartPodOperator]:
    """Yield a starter of :class:`PodOperator`; stop them all afterwards (logs printed)."""
    from kubernetes import client

    started: list[PodOperator] = []

    def start(
        namespace: str, service_account: str, command: Sequence[str], env: Mapping[str, str]
    ) -> PodOperator:
        token = (
            client.CoreV1Api(api_client)
            .create_namespaced_service_account_token(
                service_account,
                namespace,
                client.AuthenticationV1TokenRequest(
                    spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
                ),
            )
            .status.token
        )
        n = len(started)
        config = token_kubeconfig(kubeconfig, token, tmp_path / f"operator-{n}.kubeconfig")
        operator = PodOperator(
            [*command, "--kubeconfig", str(config)], env, tmp_path / f"operator-{n}.log"
        )
        started.append(operator)
        return operator

    try:
        yield start
    finally:
        for operator in started:
            operator.stop()
            print(f"--- {operator.log_path.name}\n{operator.log()[-4000:]}")
