"""The real-node host check decides from facts; each missing fact gives one reason."""

from __future__ import annotations

import pytest

from kubeserve.cli import main
from kubeserve.devcluster import host

FILESYSTEMS = "nodev\tsysfs\nnodev\toverlay\n\text4\n"
MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n/dev/vda / ext4 rw 0 0\n"


def _facts(**changes: object) -> host.HostFacts:
    base: dict[str, object] = {
        "euid": 0,
        "missing_programs": (),
        "filesystems": FILESYSTEMS,
        "mounts": MOUNTS,
    }
    return host.HostFacts(**{**base, **changes})  # type: ignore[arg-type]


def test_a_ready_host_has_no_reasons() -> None:
    assert host.reasons(_facts()) == []
    v1 = "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
    assert host.reasons(_facts(mounts=v1)) == []


def test_each_gap_is_one_reason() -> None:
    assert host.reasons(_facts(euid=1000)) == [
        "not root (a kubelet node needs root for mounts, cgroups and iptables)"
    ]
    (missing,) = host.reasons(_facts(missing_programs=("runc", "/usr/lib/cni/bridge")))
    assert "runc, /usr/lib/cni/bridge" in missing
    assert "prepare-host" in missing
    (overlay,) = host.reasons(_facts(filesystems="nodev\tsysfs\n\text4\n"))
    assert "overlayfs" in overlay
    (cgroup,) = host.reasons(_facts(mounts="/dev/vda / ext4 rw 0 0\n"))
    assert "cgroup" in cgroup
    assert len(host.reasons(_facts(euid=1, filesystems="", mounts=""))) == 3


def test_missing_programs_and_packages() -> None:
    """A package is missing when any one of its programs is."""
    present = {"containerd", "runc", "/usr/lib/cni/bridge"}.__contains__
    packages = ("containerd", "runc", "containernetworking-plugins")
    assert host.missing_programs(packages, present) == ["ctr", "/usr/lib/cni/host-local"]
    assert host.missing_packages(packages, present) == [
        "containerd",
        "containernetworking-plugins",
    ]
    assert host.missing_packages(packages, lambda _: True) == []


@pytest.mark.skipif(
    bool(host.missing_packages(tuple(host.PACKAGES))), reason="some host packages are missing"
)
def test_prepare_host_does_nothing_when_everything_is_there() -> None:
    """No apt-get at all (so no network and no root needed) on a prepared host."""
    said: list[str] = []
    assert host.prepare_host(log=said.append) == []
    assert said == []


@pytest.mark.skipif(
    bool(host.missing_packages(tuple(host.PACKAGES))), reason="some host packages are missing"
)
def test_prepare_host_command_on_a_prepared_host(capsys: pytest.CaptureFixture[str]) -> None:
    """The command says nothing was installed and lists exactly host_support()'s reasons."""
    assert main(["cluster", "prepare-host"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "every package is already installed"
    assert captured.err.count("a real node cannot run here") == len(host.host_support())
