"""``kubeserve cluster build|up|down|status|env``: the local control plane from a shell.

Thin argparse handlers over :mod:`~kubeserve.devcluster.build` and
:mod:`~kubeserve.devcluster.controlplane`; every failure they know about becomes one
readable line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from kubeserve.devcluster import build, controlplane, gateway, host, hostnet, node, versions
from kubeserve.guard import Handler, guarded
from kubeserve.images.store import ImageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``cluster`` command and its subcommands."""
    cluster = sub.add_parser(
        "cluster",
        help="build and run a local Kubernetes control plane (etcd, API server, KWOK)",
        description="A real control plane on 127.0.0.1, built once from the Go module proxy.",
    )
    cluster.set_defaults(handler=lambda _: _usage(cluster))
    commands = cluster.add_subparsers(dest="cluster_command", metavar="SUBCOMMAND")
    builder = commands.add_parser("build", help="build every pinned component into the cache")
    builder.add_argument(
        "--real-node",
        action="store_true",
        help="also build kubelet, kube-proxy and Traefik (the real node and its Gateway)",
    )
    builder.set_defaults(handler=_guard(_build))
    start = commands.add_parser("up", help="start the control plane and print KUBECONFIG")
    start.add_argument(
        "--crds",
        type=Path,
        action="append",
        metavar="DIR",
        help="folder of CRD YAML to install (repeatable; default: the repository's crds/)",
    )
    start.add_argument(
        "--real-node",
        action="store_true",
        help="run a real kubelet node (containerd, kube-proxy; root) instead of KWOK's fake one",
    )
    start.set_defaults(handler=_guard(_up))
    commands.add_parser(
        "down", help="stop every process `up` started and delete its state"
    ).set_defaults(handler=_guard(_down))
    commands.add_parser("status", help="report each component's health endpoint").set_defaults(
        handler=_guard(_status)
    )
    commands.add_parser(
        "env", help='print PATH/KUBECONFIG exports: eval "$(kubeserve cluster env)"'
    ).set_defaults(handler=_guard(_env))
    commands.add_parser(
        "prepare-host",
        help="install the Debian packages a real kubelet node needs (root; skips when present)",
    ).set_defaults(handler=_guard(_prepare_host))


def _usage(parser: argparse.ArgumentParser) -> int:
    """Print the cluster command's help."""
    parser.print_help()
    return 2


_KNOWN_ERRORS = (
    build.BuildError,
    controlplane.ClusterError,
    host.HostError,
    ImageError,
    hostnet.NetworkError,
)
"""What a cluster command can fail with and say in one line."""


def _guard(handler: Handler) -> Handler:
    """Turn known failures into one stderr message and exit status 1."""
    return guarded("cluster", handler, *_KNOWN_ERRORS)


def _build(args: argparse.Namespace) -> int:
    """Build what is missing and say where it is."""
    components = versions.ALL_COMPONENTS if args.real_node else versions.COMPONENTS
    timings = build.build(components=components)
    for item in components:
        spent = timings.get(item.key)
        note = f"built in {spent:.0f}s" if spent is not None else "cached"
        print(f"{item.key:32} {note:>16}  {versions.bin_dir(item)}")
    return 0


def _up(args: argparse.Namespace) -> int:
    """Start (or reuse) the cluster and print the KUBECONFIG export."""
    started = time.monotonic()
    if args.real_node:
        parts = _parts(announce=True)
        real = node.up(controlplane.state_dir(), node.image_archives(_note), parts=parts)
        cluster = real.cluster
        for step, seconds in real.timings.items():
            _note(f"{step:16} {seconds:6.1f}s")
        _note(f"node {real.name} Ready at {real.address} in {controlplane.elapsed(started)}")
        for part in parts:
            running = part.gateway(real)
            if running is not None:
                _note(f"Gateway {gateway.GATEWAY_NAMESPACE}/{gateway.GATEWAY_NAME}: {running.url}")
    else:
        cluster = controlplane.up()
    print(
        f"# control plane ready in {controlplane.elapsed(started)}: {cluster.server}",
        file=sys.stderr,
    )
    print(f"export KUBECONFIG={shlex.quote(str(cluster.kubeconfig))}")
    try:
        controlplane.install_crds(cluster.kubeconfig, controlplane.repo_crd_files(args.crds))
    except controlplane.ClusterError as exc:
        print(f"# the cluster is up, but installing CRDs failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _note(line: str) -> None:
    """Print a progress line on stderr as a shell comment."""
    print(f"# {line}", file=sys.stderr)


def _parts(*, announce: bool = False) -> list[gateway.GatewayPart]:
    """Return the parts started with the node: the Gateway, when Traefik is built."""
    reason = gateway.available()
    if reason is not None:
        if announce:
            _note(f"no Gateway: {reason}")
        return []
    return [gateway.GatewayPart()]


def _own_node() -> bool:
    """Return whether this machine's real node belongs to the state folder's cluster."""
    record = node.running_record()
    return record is not None and Path(record.cluster) == controlplane.state_dir()


def _down(_: argparse.Namespace) -> int:
    """Stop the cluster (and its real node, restoring the host) and remove its state."""
    if _own_node():
        started = time.monotonic()
        leftovers = node.down(_parts())
        print(f"stopped the real node and its control plane in {controlplane.elapsed(started)}")
        for line in leftovers:
            print(f"host not restored: {line}", file=sys.stderr)
        return 1 if leftovers else 0
    stopped = controlplane.down()
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def _indent(text: str) -> str:
    """Return a log tail indented under its status line."""
    return "    " + text.replace("\n", "\n    ")


def _status(_: argparse.Namespace) -> int:
    """Print one line per component, plus the log tail of any that is not ok."""
    report = controlplane.status()
    for item in report:
        print(f"{item.name:24} pid {item.pid:<8} {item.state:10} {item.health}")
        if item.log_tail:
            print(_indent(item.log_tail))
    parts = node.status(_parts()) if _own_node() else []
    for part in parts:
        print(f"{part.name:24} {'':12} {part.state}")
        if part.detail:
            print(_indent(part.detail))
    return 0 if all(item.ok for item in report) and all(p.ok for p in parts) else 1


def _env(_: argparse.Namespace) -> int:
    """Print shell exports for the cached tools and, when up, the cluster's kubeconfig."""
    dirs = ":".join(shlex.quote(str(path)) for path in build.path_dirs())
    print(f'export PATH={dirs}:"$PATH"')
    cluster = controlplane.Cluster.load(controlplane.state_dir())
    if cluster is not None:
        print(f"export KUBECONFIG={shlex.quote(str(cluster.kubeconfig))}")
    return 0


def _prepare_host(_: argparse.Namespace) -> int:
    """Install what a real node needs, then list what still stops one here.

    Exit status 0 even then: the real-node tests skip with these same reasons, and a CI
    host that cannot run a node should still run everything else.
    """
    started = time.monotonic()
    installed = host.prepare_host(log=lambda line: print(f"# {line}", file=sys.stderr))
    if installed:
        print(f"installed {' '.join(installed)} in {controlplane.elapsed(started)}")
    else:
        print("every package is already installed")
    problems = host.host_support()
    for problem in problems:
        print(f"a real node cannot run here: {problem}", file=sys.stderr)
    return 0
