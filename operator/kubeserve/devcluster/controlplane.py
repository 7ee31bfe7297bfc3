"""Run a real control plane on loopback: etcd, API server, controllers, scheduler, KWOK.

Envtest-style, but complete enough that the cluster behaves like a real one for the
operator: RBAC authorization, ServiceAccount tokens, Pod Security admission, the
controller-manager's garbage collector and workload controllers, a scheduler, and KWOK
pretending to be the kubelet of one fake Node so pods become Running/Ready and
Deployments report availableReplicas. Flags are built by pure functions; this module's
``up``/``down``/``status`` only write files, start processes and poll health endpoints.

State lives in one folder (``$KUBESERVE_CLUSTER_DIR`` or ``~/.cache/kubeserve/cluster``):
``state.json`` (pids, ports, health URLs), ``pki/``, kubeconfigs, ``etcd/`` and ``logs/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_fixed,
)

from kubeserve.devcluster import build, certs, kubeconfig, ports, processes
from kubeserve.devcluster.processes import Process

SERVICE_CIDR = "10.0.0.0/16"
"""Room for thousands of Services (the operator makes two per InferenceService)."""
POD_CIDR = "10.244.0.1/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
NODE_NAME = "kwok-node-0"
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
FIELD_MANAGER = "kubeserve-devcluster"
START_TIMEOUT = 120.0
LOOPBACK = ports.HOST
"""Where a KWOK-only control plane serves (``Cluster.ports`` hides the module in its body)."""


class ClusterError(RuntimeError):
    """The control plane could not start or is not running; the message says why."""


def state_dir() -> Path:
    """Return ``$KUBESERVE_CLUSTER_DIR`` or ``~/.cache/kubeserve/cluster``."""
    env = os.environ.get("KUBESERVE_CLUSTER_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kubeserve" / "cluster"


@dataclass(frozen=True)
class Layout:
    """Where one cluster's files live inside its state folder."""

    root: Path

    @property
    def state(self) -> Path:
        """Return the state file."""
        return self.root / "state.json"

    @property
    def pki(self) -> Path:
        """Return the certificate folder."""
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        """Return the log folder."""
        return self.root / "logs"

    @property
    def kubeconfig(self) -> Path:
        """Return the admin kubeconfig users and tests point KUBECONFIG at."""
        return self.root / "kubeconfig"

    def component_kubeconfig(self, name: str) -> Path:
        """Return the kubeconfig one control plane component uses."""
        return self.root / f"{name}.kubeconfig"

    def pem(self, stem: str) -> Path:
        """Return a PEM file path in pki/."""
        return self.pki / f"{stem}.pem"


@dataclass
class Cluster:
    """A started control plane: where it is and what runs."""

    root: Path
    ports: dict[str, int]
    processes: list[Process] = field(default_factory=list)
    address: str = LOOPBACK
    """Where the API server listens and what it advertises (a real node's address, or loopback)."""

    @property
    def layout(self) -> Layout:
        """Return the file layout."""
        return Layout(self.root)

    @property
    def kubeconfig(self) -> Path:
        """Return the admin kubeconfig path."""
        return self.layout.kubeconfig

    @property
    def server(self) -> str:
        """Return the API server URL."""
        return f"https://{self.address}:{self.ports['kube-apiserver']}"

    def save(self) -> None:
        """Write state.json."""
        data = {
            "ports": self.ports,
            "address": self.address,
            "kubeconfig": str(self.kubeconfig),
            "processes": [proc.to_json() for proc in self.processes],
        }
        self.layout.state.write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, root: Path) -> Cluster | None:
        """Read state.json; None when no cluster was started from ``root``."""
        try:
            data = json.loads(Layout(root).state.read_text())
        except FileNotFoundError:
            return None
        procs = [Process.from_json(item) for item in data["processes"]]
        address = data.get("address", ports.HOST)
        return cls(root, {k: int(v) for k, v in data["ports"].items()}, procs, address)


def etcd_args(binary: Path, data_dir: Path, client: int, peer: int) -> list[str]:
    """Return etcd's command line (single member, loopback, no fsync: test data only)."""
    client_url, peer_url = f"http://{ports.HOST}:{client}", f"http://{ports.HOST}:{peer}"
    return [
        str(binary),
        "--name=kubeserve",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=kubeserve={peer_url}",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_args(
    binary: Path, layout: Layout, etcd: int, port: int, address: str = ports.HOST
) -> list[str]:
    """Return kube-apiserver's command line: RBAC, SA token signer, Pod Security.

    On loopback no ``kubernetes`` Service endpoint is kept (a loopback address cannot be
    an Endpoints IP, and only KWOK's fake pods exist). Any other ``address`` (a real
    node's) is bound and advertised, so the ``kubernetes`` Service leads pods' in-cluster
    clients to it, and only it is bound: the API server is never on the host's other
    interfaces.
    """
    endpoints = (
        ["--endpoint-reconciler-type=none"]
        if address == ports.HOST
        else [f"--advertise-address={address}", "--endpoint-reconciler-type=lease"]
    )
    return [
        str(binary),
        f"--etcd-servers=http://{ports.HOST}:{etcd}",
        f"--bind-address={address}",
        f"--secure-port={port}",
        f"--cert-dir={layout.pki}",
        f"--tls-cert-file={layout.pem('apiserver')}",
        f"--tls-private-key-file={layout.pem('apiserver-key')}",
        f"--client-ca-file={layout.pem('ca')}",
        "--authorization-mode=RBAC",
        "--enable-admission-plugins=PodSecurity,ServiceAccount,NamespaceLifecycle",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={layout.pem('sa')}",
        f"--service-account-signing-key-file={layout.pem('sa-key')}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        *endpoints,
        "--allow-privileged=true",
        "--profiling=false",
    ]


def controller_manager_args(binary: Path, layout: Layout, port: int) -> list[str]:
    """Return kube-controller-manager's command line (all default controllers, incl. GC)."""
    config = layout.component_kubeconfig("kube-controller-manager")
    return [
        str(binary),
        f"--kubeconfig={config}",
        f"--authentication-kubeconfig={config}",
        f"--authorization-kubeconfig={config}",
        "--leader-elect=false",
        f"--bind-address={ports.HOST}",
        f"--secure-port={port}",
        f"--tls-cert-file={layout.pem('kube-controller-manager')}",
        f"--tls-private-key-file={layout.pem('kube-controller-manager-key')}",
        "--controllers=*",
        "--use-service-account-credentials=true",
        f"--root-ca-file={layout.pem('ca')}",
        f"--service-account-private-key-file={layout.pem('sa-key')}",
        f"--cluster-signing-cert-file={layout.pem('ca')}",
        f"--cluster-signing-key-file={layout.pem('ca-key')}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allocate-node-cidrs=false",
        "--profiling=false",
    ]


def scheduler_args(binary: Path, layout: Layout, port: int) -> list[str]:
    """Return kube-scheduler's command line."""
    config = layout.component_kubeconfig("kube-scheduler")
    return [
        str(binary),
        f"--kubeconfig={config}",
        f"--authentication-kubeconfig={config}",
        f"--authorization-kubeconfig={config}",
        "--leader-elect=false",
        f"--bind-address={ports.HOST}",
        f"--secure-port={port}",
        f"--tls-cert-file={layout.pem('kube-scheduler')}",
        f"--tls-private-key-file={layout.pem('kube-scheduler-key')}",
        "--profiling=false",
    ]


def kwok_args(binary: Path, stages: Path, layout: Layout, port: int) -> list[str]:
    """Return the KWOK controller's command line: it manages only the annotated fake node."""
    key, value = KWOK_ANNOTATION
    return [
        str(binary),
        f"--kubeconfig={layout.component_kubeconfig('kwok')}",
        f"--config={stages}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={key}={value}",
        f"--cidr={POD_CIDR}",
        f"--node-ip={ports.HOST}",
        f"--server-address={ports.HOST}:{port}",
        "--node-lease-duration-seconds=40",
    ]


def fake_node(name: str = NODE_NAME) -> dict[str, Any]:
    """Return the Node KWOK manages: untainted, with room for plenty of pods."""
    key, value = KWOK_ANNOTATION
    resources = {"cpu": "64", "memory": "256Gi", "pods": "500", "ephemeral-storage": "1Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
        },
    }


def _write_pki(layout: Layout, pki: certs.Pki) -> None:
    """Write every certificate and key as ``<stem>.pem`` / ``<stem>-key.pem``."""
    layout.pki.mkdir(parents=True, exist_ok=True)
    pairs = {
        "ca": pki.ca,
        "apiserver": pki.apiserver,
        "admin": pki.admin,
        "kube-controller-manager": pki.controller_manager,
        "kube-scheduler": pki.scheduler,
        "kwok": pki.kwok,
        "sa": pki.service_account,
    }
    for stem, pair in pairs.items():
        layout.pem(stem).write_bytes(pair.cert)
        key = layout.pem(f"{stem}-key")
        key.touch(mode=0o600)
        key.write_bytes(pair.key)


def _write_kubeconfigs(layout: Layout, pki: certs.Pki, server: str) -> None:
    """Write the admin kubeconfig and one per component identity."""
    users = {
        layout.kubeconfig: (pki.admin, "kubeserve-admin"),
        layout.component_kubeconfig("kube-controller-manager"): (
            pki.controller_manager,
            "system:kube-controller-manager",
        ),
        layout.component_kubeconfig("kube-scheduler"): (pki.scheduler, "system:kube-scheduler"),
        layout.component_kubeconfig("kwok"): (pki.kwok, "kwok-controller"),
    }
    for path, (pair, user) in users.items():
        kubeconfig.write(path, kubeconfig.kubeconfig(server, pki.ca.cert, pair, user))


def _tls_context(layout: Layout, client: bool) -> ssl.SSLContext:
    """Return a TLS context trusting the cluster CA, optionally with the admin cert."""
    context = ssl.create_default_context(cafile=str(layout.pem("ca")))
    if client:
        context.load_cert_chain(layout.pem("admin"), layout.pem("admin-key"))
    return context


def probe(layout: Layout, proc: Process, timeout: float = 3.0) -> str:
    """Return 'ok' or the reason ``proc``'s health endpoint is not healthy."""
    verify: ssl.SSLContext | bool = True
    if proc.health.startswith("https://"):
        verify = _tls_context(layout, client=proc.name == "kube-apiserver")
    try:
        response = httpx.get(proc.health, verify=verify, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"unreachable: {exc.__class__.__name__}: {exc}"
    body = response.text.strip()
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {body[:300]}"
    if proc.name == "etcd" and '"health":"true"' not in body.replace(" ", ""):
        return f"unhealthy: {body[:300]}"
    return "ok"


class _NotYet(Exception):
    """Raised while a component is still starting."""


def wait_healthy(layout: Layout, proc: Process, timeout: float = START_TIMEOUT) -> None:
    """Wait until ``proc`` answers its health check; fail early if it exits."""

    def check() -> None:
        if not processes.is_running(proc):
            raise ClusterError(
                f"{proc.name} exited during start-up; last lines of {proc.log}:\n"
                + processes.log_tail(proc.log)
            )
        result = probe(layout, proc)
        if result != "ok":
            raise _NotYet(result)

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(0.25),
        retry=retry_if_exception_type(_NotYet),
    )
    try:
        retrying(check)
    except RetryError as exc:
        raise ClusterError(
            f"{proc.name} was not healthy after {timeout:.0f}s ({exc.last_attempt.exception()}); "
            f"last lines of {proc.log}:\n{processes.log_tail(proc.log)}"
        ) from None


def kubectl(config: Path, *args: str, stdin: str | None = None) -> str:
    """Run the cached kubectl against ``config``; return stdout or raise ClusterError."""
    argv = [str(build.binary("kubectl")), f"--kubeconfig={config}", *args]
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def install_crds(config: Path, files: list[Path]) -> None:
    """Server-side apply CRD YAML files and wait until each is Established."""
    if not files:
        return
    file_args = [arg for path in files for arg in ("-f", str(path))]
    kubectl(
        config,
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={FIELD_MANAGER}",
        *file_args,
    )
    # kubectl wait fails at once ("accessor error: <nil>") instead of waiting while a new
    # CRD has no status.conditions yet, so a quick start-up raced it; retry until then.
    Retrying(
        stop=stop_after_delay(60),
        wait=wait_fixed(0.5),
        retry=retry_if_exception_type(ClusterError),
        reraise=True,
    )(kubectl, config, "wait", "--for=condition=Established", "--timeout=60s", *file_args)


def repo_crd_files(dirs: list[Path] | None = None) -> list[Path]:
    """Return every CRD YAML in ``dirs`` (default: the repository's crds/ when present)."""
    folders = dirs if dirs is not None else [repo_crds_dir()]
    return [path for folder in folders if folder.is_dir() for path in sorted(folder.glob("*.yaml"))]


def repo_crds_dir() -> Path:
    """Return the repository's crds/ folder (next to operator/ in a source checkout)."""
    return Path(__file__).resolve().parents[3] / "crds"


def _start(cluster: Cluster, name: str, argv: list[str], health: str) -> Process:
    """Start one component, record it in state.json and wait until it is healthy."""
    proc = processes.start(name, argv, cluster.layout.logs / f"{name}.log", health)
    cluster.processes.append(proc)
    cluster.save()
    wait_healthy(cluster.layout, proc)
    return proc


def running(root: Path, address: str = ports.HOST) -> Cluster | None:
    """Return the cluster recorded in ``root`` if it serves on ``address`` and is all healthy."""
    cluster = Cluster.load(root)
    if cluster is None or not cluster.processes or cluster.address != address:
        return None
    for proc in cluster.processes:
        if not processes.is_running(proc) or probe(cluster.layout, proc) != "ok":
            return None
    return cluster


def up(
    root: Path | None = None, *, usual_ports: bool = True, node_address: str | None = None
) -> Cluster:
    """Start the control plane in ``root`` (reusing a healthy one there) and return it.

    The third-party CRDs (Gateway API, ServiceMonitor) are installed; the project's own
    CRDs are installed separately by the caller with :func:`install_crds`, so a broken
    CRD under development is reported as such instead of failing the whole start.
    ``usual_ports=False`` takes ephemeral ports only (test sessions running side by side
    would otherwise race for the same well-known ones).

    ``node_address`` is for a real node (:mod:`~kubeserve.devcluster.node`), whose
    network must already hold that address: the API server binds and advertises it
    (and its certificate names it), and no KWOK and no fake node start, so every pod is
    scheduled to the real node.
    """
    root = root or state_dir()
    address = node_address or ports.HOST
    existing = running(root, address)
    if existing is not None:
        return existing
    down(root)
    build.ensure_built()
    layout = Layout(root)
    layout.root.mkdir(parents=True, exist_ok=True)
    pki = certs.generate(extra_ips=(node_address,) if node_address else ())
    _write_pki(layout, pki)
    preferred = ports.DEFAULT_PORTS if usual_ports else dict.fromkeys(ports.DEFAULT_PORTS, 0)
    cluster = Cluster(root, ports.pick_ports(preferred), address=address)
    _write_kubeconfigs(layout, pki, cluster.server)
    host, p = ports.HOST, cluster.ports
    try:
        _start(
            cluster,
            "etcd",
            etcd_args(build.binary("etcd"), root / "etcd", p["etcd-client"], p["etcd-peer"]),
            f"http://{host}:{p['etcd-client']}/health",
        )
        _start(
            cluster,
            "kube-apiserver",
            apiserver_args(
                build.binary("kube-apiserver"),
                layout,
                p["etcd-client"],
                p["kube-apiserver"],
                address,
            ),
            f"{cluster.server}/readyz",
        )
        for name, args in (
            ("kube-controller-manager", controller_manager_args),
            ("kube-scheduler", scheduler_args),
        ):
            _start(
                cluster,
                name,
                args(build.binary(name), layout, p[name]),
                f"https://{host}:{p[name]}/healthz",
            )
        if node_address is None:
            _start(
                cluster,
                "kwok",
                kwok_args(build.binary("kwok"), build.binary("stages.yaml"), layout, p["kwok"]),
                f"http://{host}:{p['kwok']}/healthz",
            )
            kubectl(layout.kubeconfig, "create", "-f", "-", stdin=yaml.safe_dump(fake_node()))
        install_crds(layout.kubeconfig, build.crd_files())
        if node_address is None:
            kubectl(
                layout.kubeconfig,
                "wait",
                "--for=condition=Ready",
                "--timeout=60s",
                f"node/{NODE_NAME}",
            )
    except BaseException:
        processes.stop_all(cluster.processes[::-1])
        raise
    return cluster


def down(root: Path | None = None) -> list[str]:
    """Stop every process started from ``root`` (by pid) and delete its state; return names."""
    root = root or state_dir()
    cluster = Cluster.load(root)
    stopped = processes.stop_all(cluster.processes[::-1]) if cluster is not None else []
    _remove_state(Layout(root))
    return stopped


def _remove_state(layout: Layout) -> None:
    """Delete the files ``up`` creates (only those), then the folder if it is empty."""
    for folder in (layout.pki, layout.logs, layout.root / "etcd"):
        shutil.rmtree(folder, ignore_errors=True)
    for path in [layout.state, layout.kubeconfig, *layout.root.glob("*.kubeconfig")]:
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        layout.root.rmdir()


@dataclass(frozen=True)
class ComponentStatus:
    """One component's health as ``status`` reports it."""

    name: str
    pid: int
    health: str
    state: str
    log_tail: str = ""

    @property
    def ok(self) -> bool:
        """Return whether the component is running and healthy."""
        return self.state == "ok"


def status(root: Path | None = None) -> list[ComponentStatus]:
    """Return each recorded component's health, with its log tail when it is not ok."""
    root = root or state_dir()
    cluster = Cluster.load(root)
    if cluster is None:
        raise ClusterError(f"no cluster state in {root}; start one with `kubeserve cluster up`")
    report = []
    for proc in cluster.processes:
        state = "exited" if not processes.is_running(proc) else probe(cluster.layout, proc)
        tail = "" if state == "ok" else processes.log_tail(proc.log)
        report.append(ComponentStatus(proc.name, proc.pid, proc.health, state, tail))
    return report


def elapsed(started: float) -> str:
    """Return seconds since ``started`` (a monotonic reading) as text."""
    return f"{time.monotonic() - started:.1f}s"
