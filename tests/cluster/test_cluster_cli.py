"""`kubeserve cluster up|status|down` as a user runs them, on a second, private cluster.

Covers what the session fixture does not: a busy default port is replaced by a free
one, `status` names a crashed component and shows its log, and `down` stops every
process by pid and deletes the state folder.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeserve.devcluster import build, controlplane, ports, processes

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def kubeserve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the kubeserve CLI."""
    return subprocess.run(
        [sys.executable, "-m", "kubeserve.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )


@pytest.fixture
def busy_apiserver_port() -> Iterator[int]:
    """Keep the API server's usual port busy (if nothing else already does)."""
    port = ports.DEFAULT_PORTS["kube-apiserver"]
    with socket.socket() as sock:
        if ports.is_free(port):
            sock.bind((ports.HOST, port))
            sock.listen()
        yield port


def test_up_status_crash_report_and_down(tmp_path: Path, busy_apiserver_port: int) -> None:
    """The CLI lifecycle, including a component that dies while the cluster runs."""
    build.ensure_built()
    state = tmp_path / "cluster"
    empty_crds = tmp_path / "no-crds"
    empty_crds.mkdir()
    env = {**os.environ, "KUBESERVE_CLUSTER_DIR": str(state)}
    env.pop("KUBECONFIG", None)

    started = kubeserve("cluster", "up", "--crds", str(empty_crds), env=env)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == f"export KUBECONFIG={state / 'kubeconfig'}"
    recorded = json.loads((state / "state.json").read_text())
    assert recorded["ports"]["kube-apiserver"] != busy_apiserver_port
    loaded = controlplane.Cluster.load(state)
    assert loaded is not None
    procs = {proc.name: proc for proc in loaded.processes}
    assert list(procs) == [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ]

    healthy = kubeserve("cluster", "status", env=env)
    assert healthy.returncode == 0, healthy.stdout
    assert [line.split()[3] for line in healthy.stdout.splitlines()] == ["ok"] * 5

    os.kill(procs["kube-scheduler"].pid, signal.SIGKILL)
    assert processes.wait_stopped(procs["kube-scheduler"], 10)
    crashed = kubeserve("cluster", "status", env=env)
    assert crashed.returncode == 1
    lines = crashed.stdout.splitlines()
    report = {line.split()[0]: line.split()[3] for line in lines if not line.startswith(" ")}
    assert report == {
        "etcd": "ok",
        "kube-apiserver": "ok",
        "kube-controller-manager": "ok",
        "kube-scheduler": "exited",
        "kwok": "ok",
    }
    tail = [line for line in lines if line.startswith("    ")]
    assert tail, "the crashed component's log tail is shown"

    stopped = kubeserve("cluster", "down", env=env)
    assert stopped.returncode == 0
    assert stopped.stdout.strip() == "stopped: kwok, kube-controller-manager, kube-apiserver, etcd"
    assert not any(processes.is_running(proc) for proc in procs.values())
    assert not state.exists()
