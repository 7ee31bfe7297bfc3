"""What a real node changes on the host, recorded before and put back after.

Limits first: only the kinds of change a kubelet node is known to make are watched and
restored (links, network namespaces, mounts, iptables/ip6tables chains and nft tables,
a fixed list of sysctls, top-level cgroups, a few host folders); and only changes that
are *ours* are undone: links, chains, cgroups and folders named the way the node names
them and absent from the snapshot taken before the node started. Something another
program creates meanwhile under the same names would be removed too, which is why one
real node per machine runs at a time (a lock in :mod:`~kubeserve.devcluster.node`).

The snapshot is written to disk (:func:`save_record`, under ``/run``, which a reboot
empties exactly when it also resets everything recorded) *before* the first change, so
:func:`restore` can run after a crash as well as after a clean stop, and every stop runs
the same code as crash recovery. :func:`differences` compares two snapshots and is what
the tests assert on.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubeserve.devcluster import hostnet, processes

SYSCTLS = (
    # kubelet's kernel tunables (setupKernelTunables, protectKernelDefaults off)
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    # the bridge CNI plugin (isGateway) and kube-proxy
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.default.forwarding",
    "net.ipv4.conf.all.route_localnet",
    "net.ipv6.conf.all.forwarding",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max",
)
HOST_PATHS = (
    # Paths containerd 1.6, libcni and kubelet use whatever their configured roots are:
    # shim sockets, network namespaces, CNI result cache, container log symlinks.
    "/run/containerd",
    "/run/netns",
    "/var/lib/cni",
    "/var/log/containers",
    "/var/lib/kubelet",
    "/etc/cni",
)
NETNS_DIR = Path("/run/netns")
CGROUP_NAMES = ("kubepods", "kubepods.slice", "k8s.io")
CHAIN_PREFIXES = ("KUBE-", "KUBESERVE-", "CNI-")
LINK_PREFIXES = ("veth",)
FIREWALLS = ("iptables", "ip6tables")
RECORD = Path("/run/kubeserve/realnode.json")
"""The one machine-wide record of a real node's host changes (tmpfs: gone at reboot)."""


@dataclass(frozen=True)
class Snapshot:
    """The watched host state at one moment."""

    links: tuple[str, ...]
    netns: tuple[str, ...]
    mounts: tuple[str, ...]
    firewall: dict[str, tuple[str, ...]]
    nft_tables: tuple[str, ...]
    sysctls: dict[str, str]
    cgroups: tuple[str, ...]
    paths: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        """Build from :meth:`to_json` output."""
        return cls(
            links=tuple(data["links"]),
            netns=tuple(data["netns"]),
            mounts=tuple(data["mounts"]),
            firewall={key: tuple(value) for key, value in data["firewall"].items()},
            nft_tables=tuple(data["nft_tables"]),
            sysctls=dict(data["sysctls"]),
            cgroups=tuple(data["cgroups"]),
            paths=tuple(data["paths"]),
        )


def _output(argv: Sequence[str]) -> str:
    """Return a command's stdout ('' when the tool is missing or fails)."""
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return ""
    return result.stdout if result.returncode == 0 else ""


def _links() -> tuple[str, ...]:
    """Return every link name."""
    return tuple(
        sorted(item["ifname"] for item in json.loads(_output(["ip", "-j", "link"]) or "[]"))
    )


def _unescape(field_text: str) -> str:
    """Decode mountinfo's octal escapes (``\\040`` for a space)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_text)


def mount_points(roots: Iterable[Path]) -> tuple[str, ...]:
    """Return the mount points at or under ``roots`` and under /run/netns."""
    prefixes = [str(root).rstrip("/") for root in [*roots, NETNS_DIR]]
    points = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            points.add(point)
    return tuple(sorted(points))


def normalise_rules(saved: str) -> tuple[str, ...]:
    """Return ``iptables-save`` output without comments and packet counters."""
    lines = []
    for line in saved.splitlines():
        if not line or line.startswith("#"):
            continue
        lines.append(re.sub(r" \[\d+:\d+\]$", "", line))
    return tuple(lines)


def _cgroup_mounts() -> list[Path]:
    """Return the mount points of every cgroup (v1) and cgroup2 hierarchy."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        if after.split()[0] in ("cgroup", "cgroup2"):
            mounts.append(Path(_unescape(before.split()[4])))
    return mounts


def _cgroups() -> tuple[str, ...]:
    """Return every top-level cgroup folder, as ``<hierarchy>/<name>``."""
    found = []
    for mount in _cgroup_mounts():
        with contextlib.suppress(OSError):
            found += [str(child) for child in mount.iterdir() if child.is_dir()]
    return tuple(sorted(found))


def read_sysctl(name: str) -> str | None:
    """Return a sysctl's value, or None when this kernel does not have it."""
    try:
        return (Path("/proc/sys") / name.replace(".", "/")).read_text().strip()
    except OSError:
        return None


def write_sysctl(name: str, value: str) -> None:
    """Set a sysctl."""
    (Path("/proc/sys") / name.replace(".", "/")).write_text(value + "\n")


def take(roots: Sequence[Path]) -> Snapshot:
    """Return the watched host state now; ``roots`` are the node's own folders."""
    sysctls = {name: value for name in SYSCTLS if (value := read_sysctl(name)) is not None}
    netns = tuple(sorted(p.name for p in NETNS_DIR.iterdir())) if NETNS_DIR.is_dir() else ()
    nft = _output(["nft", "list", "tables"]).splitlines()
    return Snapshot(
        links=_links(),
        netns=netns,
        mounts=mount_points(roots),
        firewall={tool: normalise_rules(_output([f"{tool}-save"])) for tool in FIREWALLS},
        nft_tables=tuple(sorted(line.strip() for line in nft if line.strip())),
        sysctls=sysctls,
        cgroups=_cgroups(),
        paths=tuple(path for path in HOST_PATHS if Path(path).exists()),
    )


def differences(before: Snapshot, after: Snapshot) -> list[str]:
    """Return one line per difference between two snapshots (empty: the same host state)."""
    diffs = []
    for name in ("links", "netns", "mounts", "nft_tables", "cgroups", "paths"):
        old, new = set(getattr(before, name)), set(getattr(after, name))
        diffs += [f"{name}: + {item}" for item in sorted(new - old)]
        diffs += [f"{name}: - {item}" for item in sorted(old - new)]
    for tool in FIREWALLS:
        old_rules, new_rules = before.firewall.get(tool, ()), after.firewall.get(tool, ())
        diffs += [f"{tool}: + {line}" for line in new_rules if line not in old_rules]
        diffs += [f"{tool}: - {line}" for line in old_rules if line not in new_rules]
    for key in sorted(set(before.sysctls) | set(after.sysctls)):
        if before.sysctls.get(key) != after.sysctls.get(key):
            diffs.append(f"sysctl {key}: {before.sysctls.get(key)} -> {after.sysctls.get(key)}")
    return diffs


@dataclass
class Record:
    """What a running real node must undo: the snapshot before it and where its files are."""

    before: Snapshot
    roots: list[str]
    """The node's own folders (everything mounted under them is the node's)."""
    shim_address: str
    """containerd's socket: shims carry it on their command line."""
    cluster: str
    """The control plane folder the node belongs to."""
    started: list[dict[str, Any]] = field(default_factory=list)
    """The :class:`~kubeserve.devcluster.processes.Process` JSON of everything it started."""

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "before": self.before.to_json(),
            "roots": self.roots,
            "shim_address": self.shim_address,
            "cluster": self.cluster,
            "started": self.started,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        """Build from :meth:`to_json` output."""
        return cls(
            Snapshot.from_json(data["before"]),
            data["roots"],
            data["shim_address"],
            data["cluster"],
            data["started"],
        )


def save_record(record: Record, path: Path = RECORD) -> None:
    """Write the record atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(record.to_json(), indent=2) + "\n")
    partial.replace(path)


def load_record(path: Path = RECORD) -> Record | None:
    """Return the recorded node, or None when no node changed this host."""
    try:
        return Record.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def _kill(pids: Iterable[int]) -> None:
    """SIGKILL each pid that still exists."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def shim_pids(address: str) -> list[int]:
    """Return the pids of containerd shims started for the containerd at ``address``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = Path(argv[0].decode(errors="replace")).name
        if name.startswith("containerd-shim") and address.encode() in argv:
            pids.append(int(proc.name))
    return pids


def _our_cgroups(before: Snapshot) -> list[Path]:
    """Return top-level cgroups the node created (known names, absent before)."""
    return [
        Path(path)
        for path in _cgroups()
        if Path(path).name in CGROUP_NAMES and path not in before.cgroups
    ]


def _cgroup_pids(top: Path) -> list[int]:
    """Return every pid in ``top`` and its descendants."""
    pids: list[int] = []
    for procs in top.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids += [int(line) for line in procs.read_text().split()]
    return pids


def _remove_cgroup(top: Path, deadline: float) -> None:
    """Kill what runs in ``top``, then remove it and its children, deepest first."""
    while (pids := _cgroup_pids(top)) and time.monotonic() < deadline:
        _kill(pids)
        time.sleep(0.05)
    folders = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for folder in [*folders, top]:
        with contextlib.suppress(FileNotFoundError):
            folder.rmdir()


def _unmount(point: str) -> None:
    """Unmount ``point``; detach it lazily if it is still busy."""
    if subprocess.run(["umount", point], capture_output=True, check=False).returncode != 0:
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _firewall_cleanup(tool: str, before: tuple[str, ...]) -> None:
    """Delete the chains (and every jump to them) that the node added for ``tool``."""
    old_chains = {line.split()[0] for line in before if line.startswith(":")}
    table = ""
    new: dict[str, list[str]] = {}
    for line in normalise_rules(_output([f"{tool}-save"])):
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            chain = line[1:].split()[0]
            if chain.startswith(CHAIN_PREFIXES) and f":{chain}" not in old_chains:
                new.setdefault(table, []).append(chain)
    for table, chains in new.items():
        rules = _output([tool, "-w", "-t", table, "-S"]).splitlines()
        for rule in rules:
            words = rule.split()
            if rule.startswith("-A ") and any(
                words[i + 1] in chains for i, w in enumerate(words[:-1]) if w in ("-j", "-g")
            ):
                subprocess.run(
                    [tool, "-w", "-t", table, "-D", *words[1:]], capture_output=True, check=False
                )
        for chain in chains:
            subprocess.run([tool, "-w", "-t", table, "-F", chain], capture_output=True, check=False)
        for chain in chains:
            subprocess.run([tool, "-w", "-t", table, "-X", chain], capture_output=True, check=False)


def _nft_cleanup(before: tuple[str, ...]) -> None:
    """Delete nft tables that did not exist before and hold no rule any more."""
    for line in _output(["nft", "list", "tables"]).splitlines():
        table = line.strip()
        if not table or table in before:
            continue
        listing = _output(["nft", "list", *table.split()])
        rules = [
            text
            for text in listing.splitlines()
            if text.strip() and not text.strip().startswith(("table ", "chain ", "type ", "}"))
        ]
        if not rules:
            subprocess.run(["nft", "delete", *table.split()], capture_output=True, check=False)


def restore(record: Record, timeout: float = 30.0) -> list[str]:
    """Undo every host change the record's node made; return what still differs after."""
    deadline = time.monotonic() + timeout
    before = record.before
    roots = [Path(root) for root in record.roots]
    recorded = [processes.Process.from_json(entry) for entry in record.started]
    _kill(proc.pid for proc in recorded if processes.is_running(proc))
    _kill(shim_pids(record.shim_address))
    our_cgroups = _our_cgroups(before)
    for top in our_cgroups:
        while (pids := _cgroup_pids(top)) and time.monotonic() < deadline:
            _kill(pids)
            time.sleep(0.05)
    for point in sorted(set(mount_points(roots)) - set(before.mounts), key=lambda p: -len(p)):
        _unmount(point)
    if NETNS_DIR.is_dir():
        for entry in NETNS_DIR.iterdir():
            if entry.name not in before.netns:
                entry.unlink(missing_ok=True)
    for link in _links():
        if link in before.links:
            continue
        if link in (hostnet.NODE_LINK, hostnet.POD_BRIDGE) or link.startswith(LINK_PREFIXES):
            subprocess.run(["ip", "link", "delete", link], capture_output=True, check=False)
    for tool in FIREWALLS:
        _firewall_cleanup(tool, before.firewall.get(tool, ()))
    _nft_cleanup(before.nft_tables)
    for name, value in before.sysctls.items():
        if read_sysctl(name) != value:
            with contextlib.suppress(OSError):
                write_sysctl(name, value)
    for top in our_cgroups:
        _remove_cgroup(top, deadline)
    for path in HOST_PATHS:
        if path not in before.paths:
            shutil.rmtree(path, ignore_errors=True)
    return differences(before, take(roots))
