"""The real node's network: a node address, a pod bridge, and guards so nothing leaves.

Limits first: IPv4 only, one node per machine (fixed link names, addresses and chain
names), and the Service range and pod subnet must not overlap a route the host already
has (:func:`conflicts` says which). Pods get no default route and no masquerading: their
routing table holds their own subnet, the Service range and the node address, nothing
else. Two guard chains enforce the same in the firewall, whatever a pod does to its own
routes:

- ``KUBESERVE-FORWARD`` (first in FORWARD): traffic from the pod subnet may only be
  forwarded back into the pod bridge (pod to pod, possibly through a Service), and
  nothing from elsewhere is forwarded into it.
- ``KUBESERVE-INPUT`` (first in INPUT): from the pod bridge only the node address is
  reachable (the API server, the model store), plus replies to connections the host
  opened (kubelet probes); the node address itself answers only loopback and the pod
  bridge, never another interface.

This kernel has no ``dummy`` link type, so the node address sits on a bridge with no
ports (``ks-node0``); the route for the Service range points at it with the node address
as source, so a ClusterIP that no rule rewrites dies there instead of following the
host's default route. kube-proxy and kubelet insert their own jumps at position 1, so
:func:`assert_guards` is called again after they start.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

NODE_ADDRESS = "10.250.0.1"
"""The node's InternalIP: the API server, kubelet's node IP and the model store use it."""
NODE_LINK = "ks-node0"
POD_BRIDGE = "ks-cni0"
POD_SUBNET = "10.245.0.0/24"
POD_GATEWAY = "10.245.0.1"
SERVICE_CIDR = "10.0.0.0/16"
"""The same range as the control plane's ``--service-cluster-ip-range``."""
CNI_NETWORK = "kubeserve"
CNI_CONFIG_NAME = "10-kubeserve.conflist"
FORWARD_GUARD = "KUBESERVE-FORWARD"
INPUT_GUARD = "KUBESERVE-INPUT"
GUARDS = {"FORWARD": FORWARD_GUARD, "INPUT": INPUT_GUARD}
"""Built-in chain -> the guard chain that must be its first rule."""


class NetworkError(RuntimeError):
    """A network command failed; the message names it and its output."""


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one command; raise NetworkError with its stderr when ``check`` and it fails."""
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")
    return result


def cni_conflist(ipam_dir: Path) -> dict[str, Any]:
    """Return the CNI network: one bridge, host-local IPs, routes to Services and the node only.

    ``ipMasq`` is off (pods never reach past the host) and no ``firewall`` plugin is
    chained (it inserts ACCEPT rules for pod IPs into FORWARD, around the guard).
    """
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": POD_BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": POD_GATEWAY}]],
                    "routes": [{"dst": SERVICE_CIDR}, {"dst": f"{NODE_ADDRESS}/32"}],
                    "dataDir": str(ipam_dir),
                },
            }
        ],
    }


def guard_rules() -> dict[str, list[list[str]]]:
    """Return each guard chain's rules, in order (arguments after ``-A CHAIN``)."""
    node = f"{NODE_ADDRESS}/32"
    return {
        FORWARD_GUARD: [
            ["-s", POD_SUBNET, "!", "-o", POD_BRIDGE, "-j", "DROP"],
            ["-o", POD_BRIDGE, "!", "-i", POD_BRIDGE, "-j", "DROP"],
        ],
        INPUT_GUARD: [
            ["-i", POD_BRIDGE, "-d", node, "-j", "RETURN"],
            [
                "-i",
                POD_BRIDGE,
                "-m",
                "conntrack",
                "--ctstate",
                "ESTABLISHED,RELATED",
                "-j",
                "RETURN",
            ],
            ["-i", POD_BRIDGE, "-j", "DROP"],
            ["-i", "lo", "-j", "RETURN"],
            ["-d", node, "-j", "DROP"],
        ],
    }


def conflicts(routes: list[dict[str, Any]]) -> list[str]:
    """Return why the node's ranges would clash with the host's routes (``ip -j route``)."""
    ours = {
        "the Service range": ipaddress.ip_network(SERVICE_CIDR),
        "the pod subnet": ipaddress.ip_network(POD_SUBNET),
        "the node address": ipaddress.ip_network(f"{NODE_ADDRESS}/32"),
    }
    reasons = []
    for route in routes:
        dst = route.get("dst", "")
        if dst == "default" or route.get("dev") in (NODE_LINK, POD_BRIDGE):
            continue
        try:
            network = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        for what, mine in ours.items():
            if network.version == mine.version and network.overlaps(mine):
                reasons.append(
                    f"{what} {mine} overlaps the host route {dst} via {route.get('dev', '?')}"
                )
    return reasons


def host_routes() -> list[dict[str, Any]]:
    """Return the host's IPv4 main routing table as ``ip -j route`` prints it."""
    routes: list[dict[str, Any]] = json.loads(_run(["ip", "-j", "-4", "route"]).stdout or "[]")
    return routes


def write_cni_config(conf_dir: Path, ipam_dir: Path) -> Path:
    """Write the CNI network configuration into ``conf_dir``; return its path."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / CNI_CONFIG_NAME
    path.write_text(json.dumps(cni_conflist(ipam_dir), indent=2) + "\n")
    return path


def _has_chain(chain: str) -> bool:
    """Return whether the filter table has ``chain``."""
    return _run(["iptables", "-w", "-n", "-L", chain], check=False).returncode == 0


def assert_guards() -> None:
    """Create the guard chains if missing and make each the first rule of its built-in chain."""
    for chain, rules in guard_rules().items():
        if not _has_chain(chain):
            _run(["iptables", "-w", "-N", chain])
            for rule in rules:
                _run(["iptables", "-w", "-A", chain, *rule])
    for builtin, chain in GUARDS.items():
        while _run(["iptables", "-w", "-D", builtin, "-j", chain], check=False).returncode == 0:
            pass
        _run(["iptables", "-w", "-I", builtin, "1", "-j", chain])


def up(conf_dir: Path, ipam_dir: Path) -> None:
    """Create the node link, its address and the Service route, the guards and the CNI config."""
    reasons = conflicts(host_routes())
    if reasons:
        raise NetworkError("the node network would clash with this host: " + "; ".join(reasons))
    _run(["ip", "link", "add", NODE_LINK, "type", "bridge"])
    _run(["ip", "link", "set", NODE_LINK, "up"])
    _run(["ip", "addr", "add", f"{NODE_ADDRESS}/32", "dev", NODE_LINK])
    _run(["ip", "route", "add", SERVICE_CIDR, "dev", NODE_LINK, "src", NODE_ADDRESS])
    assert_guards()
    write_cni_config(conf_dir, ipam_dir)


def guards_first() -> dict[str, bool]:
    """Return, per built-in chain, whether its first rule jumps to our guard."""
    result = {}
    for builtin, chain in GUARDS.items():
        listing = _run(["iptables", "-w", "-S", builtin], check=False).stdout.splitlines()
        first = next((line for line in listing if line.startswith("-A ")), "")
        result[builtin] = first == f"-A {builtin} -j {chain}"
    return result


def status() -> str:
    """Return 'ok' or what is missing from the node network."""
    problems = []
    links = json.loads(_run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    addresses = {item["ifname"]: [a["local"] for a in item.get("addr_info", [])] for item in links}
    if NODE_ADDRESS not in addresses.get(NODE_LINK, []):
        problems.append(f"{NODE_ADDRESS} is not on {NODE_LINK}")
    if not any(
        route.get("dst") == SERVICE_CIDR and route.get("dev") == NODE_LINK
        for route in host_routes()
    ):
        problems.append(f"no route for {SERVICE_CIDR} via {NODE_LINK}")
    first = guards_first()
    problems += [f"{GUARDS[name]} is not first in {name}" for name, ok in first.items() if not ok]
    return "ok" if not problems else "; ".join(problems)
