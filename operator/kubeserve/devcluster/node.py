"""A real node: kubelet, kube-proxy and containerd joined to the local control plane.

Limits first:
- Root only, Linux only, one real node per machine: the link names, the node address,
  kubelet's and kube-proxy's ports are fixed. A second ``up`` while one runs fails with
  the folder of the one that runs; a host change journal under ``/run`` (see
  :mod:`~kubeserve.devcluster.hoststate`) is both the ownership mark and what lets the
  next ``up`` clean up after a crash.
- cgroup v1 hosts run only because ``failCgroupV1: false`` opts out of kubelet 1.35's
  refusal; upstream is removing v1 support (KEP-5573), so a later kubelet may not start.
- No cluster DNS: pods find Services through the ``*_SERVICE_HOST`` environment and IPs;
  kubelet gets an empty resolv.conf, so nothing in a pod resolves names off the machine.
- kubelet runs with the admin kubeconfig, anonymous authentication and AlwaysAllow, so
  it listens on a loopback address only: the one the host name resolves to, which the
  API server dials for logs and exec (it prefers the node's Hostname address). A host
  name that does not resolve to loopback is refused with that reason.
- Images come from local archives only (imported into containerd); nothing is pulled.

Bring-up order: journal the host, node network, control plane bound to the node address,
containerd, images, kubelet, kube-proxy, guards re-asserted first, node Ready, then the
extra :class:`NodePart` s (the Gateway). Teardown: cordon and delete pods (kubelet tears
their sandboxes down), stop the parts, kube-proxy (then ``kube-proxy --cleanup``),
kubelet, containerd and the control plane, then restore the journal, the same code a
crash recovery runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from kubeserve.devcluster import (
    build,
    containerd,
    controlplane,
    host,
    hostnet,
    hoststate,
    processes,
    versions,
)
from kubeserve.devcluster.controlplane import ClusterError
from kubeserve.devcluster.processes import Process
from kubeserve.images import catalog
from kubeserve.images.containerd import import_image

LOCK = hoststate.RECORD.with_name("realnode.lock")
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
PROXY_METRICS_PORT = 10249
PROXY_HEALTHZ_PORT = 10256
READY_TIMEOUT = 120.0
POD_DELETE_TIMEOUT = 90
BINARIES = (*versions.COMPONENTS, versions.component("kubernetes-node"))
"""What a real node needs built: the control plane's components plus kubelet and kube-proxy."""
NODE_FOLDER = "node"
OPTIONAL_IMAGES = ("runtime", "operator")
"""The node's files live in ``<cluster folder>/node``."""


class NodeError(ClusterError):
    """The real node cannot start here or failed; the message says why."""


class NodePart(Protocol):
    """Something started once the node is Ready and stopped before it goes (the Gateway).

    ``start`` returns the processes it started so a crash recovery can kill them;
    ``stop`` and ``status`` must work from a fresh process given the same node (the CLI
    runs ``up``, ``status`` and ``down`` as separate commands).
    """

    name: str

    def start(self, node: RealNode) -> list[Process]:
        """Start the part; return its processes."""
        ...

    def stop(self, node: RealNode) -> None:
        """Stop the part (it may already be gone)."""
        ...

    def status(self, node: RealNode) -> str:
        """Return 'ok' or why the part is not healthy."""
        ...


@dataclass(frozen=True)
class Layout:
    """Where one real node's files live."""

    root: Path

    @property
    def containerd(self) -> containerd.Paths:
        """Return containerd's folder."""
        return containerd.Paths(self.root / "containerd")

    @property
    def cni_conf(self) -> Path:
        """Return the CNI configuration folder containerd reads."""
        return self.root / "cni" / "net.d"

    @property
    def ipam(self) -> Path:
        """Return host-local IPAM's allocation folder."""
        return self.root / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        """Return kubelet's ``--root-dir`` (volumes, pod state)."""
        return self.root / "kubelet"

    @property
    def config(self) -> Path:
        """Return the folder of kubelet's and kube-proxy's config files."""
        return self.root / "config"

    @property
    def pod_logs(self) -> Path:
        """Return kubelet's pod log folder."""
        return self.root / "pod-logs"

    @property
    def logs(self) -> Path:
        """Return the process log folder."""
        return self.root / "logs"


@dataclass
class RealNode:
    """A running real node and its control plane."""

    cluster: controlplane.Cluster
    name: str
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per bring-up step, in order."""

    @property
    def layout(self) -> Layout:
        """Return the node's file layout."""
        return Layout(self.cluster.root / NODE_FOLDER)

    @property
    def kubeconfig(self) -> Path:
        """Return the admin kubeconfig."""
        return self.cluster.kubeconfig

    @property
    def address(self) -> str:
        """Return the node address (InternalIP; the API server and model store listen there)."""
        return hostnet.NODE_ADDRESS

    @property
    def containerd_socket(self) -> Path:
        """Return containerd's socket."""
        return self.layout.containerd.socket


def node_name(host_name: str | None = None) -> tuple[str, str]:
    """Return the node's name (the host name) and the loopback address it resolves to.

    The API server reaches kubelet through the node's Hostname address, and kubelet
    listens on loopback only, so the name must resolve to a loopback address.
    """
    name = (host_name or socket.gethostname()).lower()
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET)
    except socket.gaierror as exc:
        raise NodeError(
            f"the host name {name!r} does not resolve ({exc}); add it to /etc/hosts"
        ) from None
    for info in infos:
        address = str(info[4][0])
        if ipaddress.ip_address(address).is_loopback:
            return name, address
    raise NodeError(
        f"the host name {name!r} resolves to {infos[0][4][0]}, not to loopback: kubelet listens "
        f"on loopback only, so add `127.0.0.1 {name}` to /etc/hosts"
    )


def kubelet_config(layout: Layout, bind: str) -> dict[str, Any]:
    """Return the KubeletConfiguration: loopback-only, cgroupfs, no DNS, tolerant of v1."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # kubelet 1.35 refuses cgroup v1 unless told otherwise (KEP-5573)
        "failCgroupV1": False,
        "failSwapOn": False,
        # no systemd; containerd 1.6 has no RuntimeConfig RPC to say which driver it uses
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{layout.containerd.socket}",
        "address": bind,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        # the API server has no kubelet client certificate; loopback only, so nobody else
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "podLogsDir": str(layout.pod_logs),
        "resolvConf": str(layout.config / "resolv.conf"),
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        # imported images cannot be pulled again: never garbage-collect them
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "syncFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "maxPods": 50,
    }


def kubelet_args(binary: Path, layout: Layout, kubeconfig: Path, name: str) -> list[str]:
    """Return kubelet's command line."""
    return [
        str(binary),
        f"--config={layout.config / 'kubelet.yaml'}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={layout.kubelet_root}",
        f"--cert-dir={layout.kubelet_root / 'pki'}",
        f"--hostname-override={name}",
        f"--node-ip={hostnet.NODE_ADDRESS}",
        "--v=2",
    ]


def kube_proxy_config(kubeconfig: Path, name: str) -> dict[str, Any]:
    """Return the KubeProxyConfiguration: iptables mode, loopback endpoints, host sysctls kept."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clusterCIDR": hostnet.POD_SUBNET,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": f"127.0.0.1:{PROXY_METRICS_PORT}",
        "hostnameOverride": name,
        "nodePortAddresses": [f"{hostnet.NODE_ADDRESS}/32"],
        # zero: leave the host's conntrack sysctls alone
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "clientConnection": {"kubeconfig": str(kubeconfig)},
    }


def _write_configs(layout: Layout, kubeconfig: Path, name: str, bind: str) -> None:
    """Write kubelet's and kube-proxy's config files and the empty resolv.conf."""
    layout.config.mkdir(parents=True, exist_ok=True)
    (layout.config / "resolv.conf").write_text("")
    (layout.config / "kubelet.yaml").write_text(yaml.safe_dump(kubelet_config(layout, bind)))
    proxy = kube_proxy_config(kubeconfig, name)
    (layout.config / "kube-proxy.yaml").write_text(yaml.safe_dump(proxy))


@contextmanager
def _locked() -> Iterator[None]:
    """Hold the machine-wide real-node lock while changing what runs."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(record: hoststate.Record) -> list[Process]:
    """Return the recorded processes that still run."""
    started = [Process.from_json(entry) for entry in record.started]
    return [proc for proc in started if processes.is_running(proc)]


def image_archives(log: Callable[[str], None]) -> list[Path]:
    """Return the pause image's archive (built when missing) and the other images already built.

    The runtime and operator images take minutes to build, so they are imported only when
    ``kubeserve image build`` has made them; a node without them still runs other pods.
    """
    archives = [catalog.build_pause(log).path]
    for name in OPTIONAL_IMAGES:
        try:
            path = catalog.archive_of(name)
        except KeyError:  # the catalog cannot locate this image's archive
            continue
        if path.exists():
            archives.append(path)
    return archives


def host_reasons() -> list[str]:
    """Return why this host cannot run a real node: packages and privileges, then network."""
    return host.host_support() or preflight()


def preflight() -> list[str]:
    """Return why this host cannot run the real node (empty: it can)."""
    reasons = hostnet.conflicts(hostnet.host_routes())
    try:
        node_name()
    except NodeError as exc:
        reasons.append(str(exc))
    return reasons


def _step(timings: dict[str, float], name: str, action: Callable[[], object]) -> None:
    """Run one bring-up step and record its duration."""
    started = time.monotonic()
    action()
    timings[name] = round(time.monotonic() - started, 2)


def _start(
    record: hoststate.Record, layout: Layout, name: str, argv: list[str], health: str
) -> Process:
    """Start one node process and journal it before it can change anything."""
    proc = processes.start(name, argv, layout.logs / f"{name}.log", health)
    record.started.append(proc.to_json())
    hoststate.save_record(record)
    return proc


def _wait(what: str, check: Callable[[], str], timeout: float, proc: Process | None = None) -> None:
    """Wait until ``check`` returns 'ok' (fail early if ``proc`` exits)."""

    class _NotYet(Exception):
        pass

    def attempt() -> None:
        if proc is not None and not processes.is_running(proc):
            raise NodeError(
                f"{what} exited; last lines of {proc.log}:\n{processes.log_tail(proc.log)}"
            )
        result = check()
        if result != "ok":
            raise _NotYet(result)

    try:
        Retrying(
            stop=stop_after_delay(timeout),
            wait=wait_fixed(0.25),
            retry=retry_if_exception_type(_NotYet),
        )(attempt)
    except Exception as exc:
        if isinstance(exc, NodeError):
            raise
        tail = processes.log_tail(proc.log) if proc is not None else ""
        raise NodeError(f"{what} not ready after {timeout:.0f}s: {exc}\n{tail}") from None


def http_probe(url: str) -> str:
    """Return 'ok' when ``url`` answers 200, else why not."""
    try:
        answer = httpx.get(url, timeout=3.0)
    except httpx.HTTPError as exc:
        return f"unreachable: {exc.__class__.__name__}"
    return "ok" if answer.status_code == 200 else f"HTTP {answer.status_code}"


def node_ready(kubeconfig: Path, name: str) -> str:
    """Return 'ok' when the Node reports Ready=True, else its Ready condition or absence."""
    try:
        raw = controlplane.kubectl(kubeconfig, "get", "node", name, "-o", "json")
    except ClusterError as exc:
        return str(exc)
    conditions = json.loads(raw).get("status", {}).get("conditions", [])
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is None:
        return "no Ready condition yet"
    return (
        "ok" if ready.get("status") == "True" else f"{ready.get('reason')}: {ready.get('message')}"
    )


UNIX_SOCKET_PATH_MAX = 107
"""Longest path a unix socket can bind to on Linux (sun_path holds 108 bytes with the NUL)."""
KUBELET_TEMP_SOCKET = "pod-resources/0123456789"
"""The longest socket kubelet binds under its root: a temporary name of 10 digits."""


def socket_path_problem(layout: Layout) -> str | None:
    """Why kubelet could not bind its sockets under ``layout`` (a path too long), or None.

    kubelet binds ``<root-dir>/pod-resources/<10 digits>`` and exits with "bind: invalid
    argument" when that is longer than a unix socket path may be; say so before starting.
    """
    longest = layout.kubelet_root / KUBELET_TEMP_SOCKET
    if len(str(longest)) <= UNIX_SOCKET_PATH_MAX:
        return None
    return (
        f"the cluster folder {layout.root.parent} is too deep for kubelet's unix sockets "
        f"({len(str(longest))} > {UNIX_SOCKET_PATH_MAX} characters for {longest}); "
        "set KUBESERVE_CLUSTER_DIR to a shorter path"
    )


def up(
    cluster_root: Path,
    archives: Sequence[Path],
    *,
    usual_ports: bool = True,
    parts: Sequence[NodePart] = (),
) -> RealNode:
    """Start a control plane in ``cluster_root`` with a real node; return it once Ready.

    ``archives`` are OCI image archives imported into the node's containerd (the pause
    image at least). After a crash, the previous node's leftovers are cleaned up first.
    """
    reasons = host.host_support()
    if reasons:
        raise NodeError("this host cannot run a real node: " + "; ".join(reasons))
    too_long = socket_path_problem(Layout(cluster_root / NODE_FOLDER))
    if too_long:
        raise NodeError(too_long)
    build.ensure_built(components=BINARIES)
    with _locked():
        _recover()
        reasons = preflight()
        if reasons:
            raise NodeError("this host cannot run a real node: " + "; ".join(reasons))
        name, bind = node_name()
        layout = Layout(cluster_root / NODE_FOLDER)
        shutil.rmtree(layout.root, ignore_errors=True)
        layout.root.mkdir(parents=True)
        record = hoststate.Record(
            before=hoststate.take([layout.root]),
            roots=[str(layout.root)],
            shim_address=str(layout.containerd.socket),
            cluster=str(cluster_root),
        )
        hoststate.save_record(record)
        try:
            return _bring_up(record, layout, cluster_root, name, bind, archives, usual_ports, parts)
        except BaseException:
            _teardown(record, parts, graceful=False)
            raise


def _bring_up(
    record: hoststate.Record,
    layout: Layout,
    cluster_root: Path,
    name: str,
    bind: str,
    archives: Sequence[Path],
    usual_ports: bool,
    parts: Sequence[NodePart],
) -> RealNode:
    """Start every node part in order (the journal already exists)."""
    timings: dict[str, float] = {}
    _step(timings, "network", lambda: hostnet.up(layout.cni_conf, layout.ipam))
    clusters: list[controlplane.Cluster] = []
    _step(
        timings,
        "control plane",
        lambda: clusters.append(
            controlplane.up(
                cluster_root, usual_ports=usual_ports, node_address=hostnet.NODE_ADDRESS
            )
        ),
    )
    node = RealNode(clusters[0], name, timings)
    paths = layout.containerd

    def start_containerd() -> None:
        containerd.write_config(paths, layout.cni_conf)
        proc = _start(
            record, layout, "containerd", containerd.argv(paths), f"unix://{paths.socket}"
        )
        _wait("containerd", lambda: containerd.probe(paths), 30, proc)

    _step(timings, "containerd", start_containerd)
    _step(timings, "images", lambda: [import_image(paths.socket, archive) for archive in archives])
    _write_configs(layout, node.kubeconfig, name, bind)
    kubelet_health = f"http://127.0.0.1:{KUBELET_HEALTHZ_PORT}/healthz"
    proxy_health = f"http://127.0.0.1:{PROXY_HEALTHZ_PORT}/healthz"

    def start_kubelet() -> None:
        argv = kubelet_args(build.binary("kubelet"), layout, node.kubeconfig, name)
        proc = _start(record, layout, "kubelet", argv, kubelet_health)
        _wait("kubelet", lambda: http_probe(kubelet_health), 60, proc)

    def start_proxy() -> None:
        argv = [
            str(build.binary("kube-proxy")),
            f"--config={layout.config / 'kube-proxy.yaml'}",
            "--v=2",
        ]
        proc = _start(record, layout, "kube-proxy", argv, proxy_health)
        _wait("kube-proxy", lambda: http_probe(proxy_health), 60, proc)
        hostnet.assert_guards()

    _step(timings, "kubelet", start_kubelet)
    _step(timings, "kube-proxy", start_proxy)
    _step(
        timings,
        "node Ready",
        lambda: _wait("node", lambda: node_ready(node.kubeconfig, name), READY_TIMEOUT),
    )
    for part in parts:

        def start_part(part: NodePart = part) -> None:
            for proc in part.start(node):
                record.started.append(proc.to_json())
            hoststate.save_record(record)

        _step(timings, part.name, start_part)
    hostnet.assert_guards()
    return node


def _recover() -> None:
    """Clean up after a node whose processes are gone; refuse while one still runs."""
    record = hoststate.load_record()
    if record is None:
        return
    alive = _alive(record)
    if alive:
        raise NodeError(
            f"a real node already runs on this machine (cluster folder {record.cluster}; "
            f"{', '.join(p.name for p in alive)} running); stop it first with "
            f"`KUBESERVE_CLUSTER_DIR={record.cluster} kubeserve cluster down`"
        )
    _teardown(record, (), graceful=False)


def _delete_pods(kubeconfig: Path, name: str) -> None:
    """Cordon the node and delete every pod so kubelet tears their sandboxes down."""
    controlplane.kubectl(kubeconfig, "cordon", name)
    controlplane.kubectl(
        kubeconfig,
        "delete",
        "pods",
        "--all",
        "--all-namespaces",
        "--grace-period=1",
        "--wait=true",
        f"--timeout={POD_DELETE_TIMEOUT}s",
    )


def _teardown(record: hoststate.Record, parts: Sequence[NodePart], *, graceful: bool) -> list[str]:
    """Stop everything the record names and restore the host; return what still differs."""
    cluster = controlplane.Cluster.load(Path(record.cluster))
    layout = Layout(Path(record.cluster) / NODE_FOLDER)
    started = {entry["name"]: Process.from_json(entry) for entry in record.started}
    if graceful and cluster is not None:
        node = RealNode(cluster, node_name()[0])
        if "kubelet" in started and processes.is_running(started["kubelet"]):
            # the restore below kills whatever kubelet did not stop
            with contextlib.suppress(ClusterError):
                _delete_pods(cluster.kubeconfig, node.name)
        for part in reversed(parts):
            part.stop(node)
    order = [name for name in started if name not in ("containerd", "kubelet", "kube-proxy")]
    processes.stop_all([started[n] for n in [*order, "kube-proxy", "kubelet"] if n in started])
    if "kube-proxy" in started:
        subprocess.run(
            [started["kube-proxy"].argv[0], "--cleanup"], capture_output=True, check=False
        )
    if "containerd" in started:
        processes.stop_all([started["containerd"]])
    controlplane.down(Path(record.cluster))
    leftovers = hoststate.restore(record)
    shutil.rmtree(layout.root, ignore_errors=True)
    with contextlib.suppress(OSError):  # the control plane left it empty, as without a node
        Path(record.cluster).rmdir()
    containerd.SOCKET.unlink(missing_ok=True)
    Path(f"{containerd.SOCKET}.ttrpc").unlink(missing_ok=True)
    hoststate.RECORD.unlink(missing_ok=True)
    return leftovers


def down(parts: Sequence[NodePart] = ()) -> list[str]:
    """Stop the machine's real node and its control plane; return host differences left.

    An empty list means the host is back to the snapshot taken before ``up``.
    """
    with _locked():
        record = hoststate.load_record()
        if record is None:
            return []
        return _teardown(record, parts, graceful=True)


def running_record() -> hoststate.Record | None:
    """Return the journal of the machine's real node, if there is one."""
    return hoststate.load_record()


@dataclass(frozen=True)
class PartStatus:
    """One node part's health as ``cluster status`` shows it."""

    name: str
    state: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Return whether the part is healthy."""
        return self.state == "ok"


def status(parts: Sequence[NodePart] = ()) -> list[PartStatus]:
    """Return the health of every node part (empty when no real node runs here)."""
    record = hoststate.load_record()
    cluster = controlplane.Cluster.load(Path(record.cluster)) if record is not None else None
    if record is None or cluster is None:
        return []
    layout = Layout(Path(record.cluster) / NODE_FOLDER)
    started = {entry["name"]: Process.from_json(entry) for entry in record.started}
    report = [PartStatus("network", hostnet.status())]
    checks: dict[str, Callable[[], str]] = {
        "containerd": lambda: containerd.probe(layout.containerd),
        "kubelet": lambda: http_probe(started["kubelet"].health),
        "kube-proxy": lambda: http_probe(started["kube-proxy"].health),
    }
    for name, check in checks.items():
        proc = started.get(name)
        if proc is None:
            report.append(PartStatus(name, "not started"))
        elif not processes.is_running(proc):
            report.append(PartStatus(name, "exited", processes.log_tail(proc.log)))
        else:
            state = check()
            tail = "" if state == "ok" else processes.log_tail(proc.log)
            report.append(PartStatus(name, state, tail))
    node = RealNode(cluster, node_name()[0])
    report.append(PartStatus(f"node {node.name} Ready", node_ready(cluster.kubeconfig, node.name)))
    report += [PartStatus(part.name, part.status(node)) for part in parts]
    return report
