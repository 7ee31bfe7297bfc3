"""Can this machine run a real kubelet node, and installing what it lacks (Debian only).

Limits: the check reads only local facts (effective uid, binaries on PATH and in the CNI
folder, ``/proc/filesystems``, ``/proc/mounts``); it does not try to start anything, so
an empty answer means "worth trying", not "guaranteed". Installing needs root and
``apt-get`` (Debian/Ubuntu); Debian's containerd 1.6, runc and CNI plugins are what the
real-node work was verified with (notes/real-node.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

CNI_DIR = Path("/usr/lib/cni")
"""Where Debian's containernetworking-plugins puts the CNI plugins."""

PACKAGES: Mapping[str, tuple[str, ...]] = {
    "containerd": ("containerd", "ctr"),
    "runc": ("runc",),
    "containernetworking-plugins": (str(CNI_DIR / "bridge"), str(CNI_DIR / "host-local")),
    "iptables": ("iptables",),
    "conntrack": ("conntrack",),
    "nftables": ("nft",),
    "debootstrap": ("debootstrap",),
    "skopeo": ("skopeo",),
}
"""Debian package -> the programs it provides that kubeserve uses (a path or a PATH name).

debootstrap builds the image base; skopeo is the independent archive reader of the tests;
nft lets ``cluster down`` delete the empty nftables tables iptables-nft leaves behind.
"""

NODE_PACKAGES = (
    "containerd",
    "runc",
    "containernetworking-plugins",
    "iptables",
    "conntrack",
    "nftables",
)
"""The packages a node cannot run without (the others build or check images)."""


@dataclass(frozen=True)
class HostFacts:
    """What :func:`reasons` decides from, gathered by :meth:`probe`."""

    euid: int
    missing_programs: tuple[str, ...]
    filesystems: str
    """Text of /proc/filesystems."""
    mounts: str
    """Text of /proc/mounts."""

    @classmethod
    def probe(cls, packages: tuple[str, ...] = NODE_PACKAGES) -> HostFacts:
        """Read the facts of this machine."""
        return cls(
            euid=os.geteuid(),
            missing_programs=tuple(missing_programs(packages)),
            filesystems=_read(Path("/proc/filesystems")),
            mounts=_read(Path("/proc/mounts")),
        )


def _read(path: Path) -> str:
    """Return a file's text, or empty when it cannot be read."""
    try:
        return path.read_text()
    except OSError:
        return ""


def _present(program: str) -> bool:
    """Return whether a program (absolute path or PATH name) is there and executable."""
    if program.startswith("/"):
        return os.access(program, os.X_OK)
    return shutil.which(program) is not None


def missing_programs(
    packages: tuple[str, ...], present: Callable[[str], bool] = _present
) -> list[str]:
    """Return the programs of ``packages`` that are not installed."""
    return [prog for package in packages for prog in PACKAGES[package] if not present(prog)]


def missing_packages(
    packages: tuple[str, ...], present: Callable[[str], bool] = _present
) -> list[str]:
    """Return the packages of which at least one program is not installed."""
    return [p for p in packages if any(not present(prog) for prog in PACKAGES[p])]


def reasons(facts: HostFacts) -> list[str]:
    """Return why a real node cannot run on a host with these facts (empty: it can)."""
    found = []
    if facts.euid != 0:
        found.append("not root (a kubelet node needs root for mounts, cgroups and iptables)")
    if facts.missing_programs:
        found.append(
            f"missing {', '.join(facts.missing_programs)} "
            "(run `kubeserve cluster prepare-host` as root)"
        )
    if not any(line.split()[-1:] == ["overlay"] for line in facts.filesystems.splitlines()):
        found.append("no overlayfs in /proc/filesystems (containerd's snapshotter needs it)")
    if not any(
        line.split()[2:3] in (["cgroup"], ["cgroup2"]) for line in facts.mounts.splitlines()
    ):
        found.append("no cgroup filesystem mounted (the kubelet needs cgroup v1 or v2)")
    return found


def host_support() -> list[str]:
    """Return why a real node cannot run on this machine; an empty list means it can."""
    return reasons(HostFacts.probe())


class HostError(RuntimeError):
    """Host preparation failed; the message says which step and why."""


def prepare_host(log: Callable[[str], None]) -> list[str]:
    """Install the Debian packages that are missing; return them (empty: nothing to do).

    ``apt-get update`` runs only when something is installed, so a prepared host costs
    nothing and needs no network.
    """
    wanted = missing_packages(tuple(PACKAGES))
    if not wanted:
        return []
    if os.geteuid() != 0:
        raise HostError(f"installing {', '.join(wanted)} needs root")
    if shutil.which("apt-get") is None:
        raise HostError(f"no apt-get: install {', '.join(wanted)} with this system's tools")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", *wanted],
    ):
        log(" ".join(command))
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-15:])
            raise HostError(f"`{' '.join(command)}` failed:\n{tail}")
    return wanted
