"""Traefik serving the ``kubeserve`` Gateway of the real node: Gateway API with no Envoy.

Limits first:
- Traefik runs as a host process, not as a pod: no Traefik image is built. It reads the
  cluster with the kubeconfig it is given and sends requests straight to the pod IPs of
  each backend's EndpointSlices, which the host reaches over the pod bridge. So it
  exercises the HTTPRoute (weights, header matches, mirror) exactly, but not a Service's
  ClusterIP; the Services themselves are exercised by clients inside pods.
- It listens on loopback only, one HTTP listener. Traefik ties a Gateway listener to the
  entryPoint whose port equals the listener's port, so the Gateway's listener port is
  the (ephemeral) entryPoint port picked here, not 80.
- One Gateway, in its own namespace, accepting HTTPRoutes from every namespace: the
  operator must be told ``gateway_namespace=GATEWAY_NAMESPACE`` (KUBESERVE_GATEWAY_NAMESPACE
  or the chart's gateway.namespace), or its routes stay unattached.
- Pinned to Traefik 3.6 (``versions.TRAEFIK``), whose Gateway API (v1.4.0) matches the
  CRDs the control plane installs; its weighted round robin is deterministic, so a split
  over N requests is exact, which the end-to-end tests rely on.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from kubeserve.devcluster import build, ports, processes, versions
from kubeserve.devcluster.controlplane import ClusterError, kubectl
from kubeserve.devcluster.processes import Process

if TYPE_CHECKING:
    from kubeserve.devcluster.node import RealNode

GATEWAY_CLASS = "traefik"
CONTROLLER_NAME = "traefik.io/gateway-controller"
GATEWAY_NAME = "kubeserve"
GATEWAY_NAMESPACE = "kubeserve-gateway"
LISTENER = "web"
READY_TIMEOUT = 120.0
STATE_FILE = "gateway.json"


@dataclass(frozen=True)
class Gateway:
    """A running Traefik and the Gateway it programs: where to send requests."""

    web_port: int
    ping_port: int
    process: Process

    @property
    def url(self) -> str:
        """Return the base URL of the Gateway's listener (send a Host header per route)."""
        return f"http://{ports.HOST}:{self.web_port}"

    @property
    def ping_url(self) -> str:
        """Return Traefik's own health endpoint."""
        return f"http://{ports.HOST}:{self.ping_port}/ping"

    def save(self, folder: Path) -> None:
        """Record the Gateway under ``folder`` so ``status``/``down`` find it later."""
        record = {
            "web_port": self.web_port,
            "ping_port": self.ping_port,
            "process": self.process.to_json(),
        }
        (folder / STATE_FILE).write_text(json.dumps(record, indent=2))

    @classmethod
    def load(cls, folder: Path) -> Gateway | None:
        """Return the recorded Gateway of ``folder``, or None."""
        path = folder / STATE_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(data["web_port"], data["ping_port"], Process.from_json(data["process"]))


def traefik_config(web_port: int, ping_port: int) -> dict[str, Any]:
    """Return Traefik's static configuration: loopback entryPoints, the Gateway provider."""
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": {
            LISTENER: {"address": f"{ports.HOST}:{web_port}"},
            "traefik": {"address": f"{ports.HOST}:{ping_port}"},
        },
        "ping": {"entryPoint": "traefik"},
        "providers": {"kubernetesGateway": {}},
        "log": {"level": "INFO"},
        "accessLog": {},
    }


def gateway_objects(web_port: int) -> list[dict[str, Any]]:
    """Return the Namespace, GatewayClass and Gateway that Traefik is to program."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GATEWAY_NAMESPACE}},
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": CONTROLLER_NAME},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE},
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [
                    {
                        "name": LISTENER,
                        "protocol": "HTTP",
                        "port": web_port,
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        },
    ]


def _ping(url: str) -> None:
    """Raise ClusterError unless Traefik answers its ping."""
    try:
        answer = httpx.get(url, timeout=2.0)
    except httpx.HTTPError as exc:
        raise ClusterError(f"traefik ping {url}: {exc}") from exc
    if answer.status_code != 200:
        raise ClusterError(f"traefik ping {url}: HTTP {answer.status_code}")


def _programmed(config: Path) -> None:
    """Raise ClusterError until the Gateway reports Programmed=True."""
    kubectl(
        config,
        "wait",
        "--for=condition=Programmed",
        "--timeout=5s",
        f"--namespace={GATEWAY_NAMESPACE}",
        f"gateway/{GATEWAY_NAME}",
    )


def start(folder: Path, config: Path) -> Gateway:
    """Start Traefik for the cluster of ``config``, apply the Gateway, wait until Programmed."""
    folder.mkdir(parents=True, exist_ok=True)
    picked = ports.pick_ports({"web": 0, "ping": 0})
    static = folder / "traefik.yaml"
    static.write_text(yaml.safe_dump(traefik_config(picked["web"], picked["ping"])))
    argv = [str(build.binary("traefik")), f"--configFile={static}"]
    # Traefik's Kubernetes client reads KUBECONFIG when it runs outside a cluster.
    proc = processes.start(
        "traefik",
        argv,
        folder / "logs" / "traefik.log",
        f"http://{ports.HOST}:{picked['ping']}/ping",
        env={"KUBECONFIG": str(config)},
    )
    gateway = Gateway(picked["web"], picked["ping"], proc)
    gateway.save(folder)
    kubectl(config, "apply", "-f", "-", stdin=yaml.safe_dump_all(gateway_objects(gateway.web_port)))
    try:
        for check in (lambda: _ping(gateway.ping_url), lambda: _programmed(config)):
            Retrying(
                stop=stop_after_delay(READY_TIMEOUT),
                wait=wait_fixed(0.5),
                retry=retry_if_exception_type(ClusterError),
                reraise=True,
            )(check)
    except ClusterError as exc:
        tail = processes.log_tail(proc.log)
        stop(folder)
        raise ClusterError(f"the Gateway did not become ready: {exc}\n{tail}") from exc
    return gateway


def stop(folder: Path) -> list[str]:
    """Stop the recorded Traefik of ``folder``; return what was running."""
    gateway = Gateway.load(folder)
    if gateway is None:
        return []
    stopped = processes.stop_all([gateway.process])
    (folder / STATE_FILE).unlink(missing_ok=True)
    return stopped


def health(folder: Path) -> tuple[bool, str]:
    """Return whether the recorded Traefik runs and answers, and a one-line reason."""
    gateway = Gateway.load(folder)
    if gateway is None:
        return False, "not started"
    if not processes.is_running(gateway.process):
        return False, f"exited; log: {gateway.process.log}"
    try:
        _ping(gateway.ping_url)
    except ClusterError as exc:
        return False, str(exc)
    return True, f"{gateway.url} (Gateway {GATEWAY_NAMESPACE}/{GATEWAY_NAME})"


def as_dict(gateway: Gateway) -> dict[str, Any]:
    """Return a JSON-ready description of a Gateway (for status output and tests)."""
    return {**asdict(gateway), "url": gateway.url}


def available() -> str | None:
    """Return None when Traefik is built, else why the Gateway cannot start."""
    if build.is_built(versions.component("traefik")):
        return None
    return "Traefik is not built (`kubeserve cluster build --real-node` builds it)"


class GatewayPart:
    """The Gateway as a part of the real node: started once the node is Ready.

    Its state lives in the node's folder, so ``up``, ``status`` and ``down`` run as
    separate commands find it, and a crash recovery kills its process with the node's.
    """

    name = "gateway"

    @staticmethod
    def folder(node: RealNode) -> Path:
        """Return the Gateway's state folder inside the node's."""
        return node.layout.root / "gateway"

    def start(self, node: RealNode) -> list[Process]:
        """Start Traefik and program the Gateway; return its process."""
        return [start(self.folder(node), node.kubeconfig).process]

    def stop(self, node: RealNode) -> None:
        """Stop Traefik (if it still runs)."""
        stop(self.folder(node))

    def status(self, node: RealNode) -> str:
        """Return 'ok' or why the Gateway is not healthy."""
        healthy, reason = health(self.folder(node))
        return "ok" if healthy else reason

    def gateway(self, node: RealNode) -> Gateway | None:
        """Return the running Gateway of ``node``, if started."""
        return Gateway.load(self.folder(node))
