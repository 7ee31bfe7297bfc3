"""The local control plane's small parts, each on its own: ports, PKI, processes, errors."""

from __future__ import annotations

import base64
import datetime
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from kubeserve.devcluster import build, certs, controlplane, kubeconfig, ports, processes, session


@pytest.fixture
def taken_port() -> Iterator[int]:
    """Yield a loopback port that is bound (and listening) for the test's duration."""
    with socket.socket() as sock:
        sock.bind((ports.HOST, 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_free_preferred_port_is_kept(taken_port: int) -> None:
    """A preferred port that is free is used as is."""
    with socket.socket() as probe:
        probe.bind((ports.HOST, 0))
        free = probe.getsockname()[1]
    assert ports.pick_ports({"api": free})["api"] == free


def test_taken_port_is_replaced_by_another_free_one(taken_port: int) -> None:
    """A busy preferred port yields a different port that can be bound."""
    picked = ports.pick_ports({"api": taken_port, "etcd": taken_port, "any": 0})
    assert taken_port not in picked.values()
    assert len(set(picked.values())) == 3
    assert all(ports.is_free(port) for port in picked.values())
    assert not ports.is_free(taken_port)


def _cert(pem: bytes) -> x509.Certificate:
    """Parse a PEM certificate."""
    return x509.load_pem_x509_certificate(pem)


def test_pki_chains_to_one_ca_with_the_identities_rbac_sees() -> None:
    """Leaf certs verify against the CA; subjects carry the Kubernetes user and groups."""
    pki = certs.generate()
    ca = _cert(pki.ca.cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for pair in (pki.apiserver, pki.admin, pki.controller_manager, pki.scheduler, pki.kwok):
        leaf = _cert(pair.cert)
        leaf.verify_directly_issued_by(ca)
        assert leaf.not_valid_after_utc > datetime.datetime.now(datetime.UTC)

    admin = _cert(pki.admin.cert).subject
    assert admin.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    kcm = _cert(pki.controller_manager.cert).subject
    assert (
        kcm.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:kube-controller-manager"
    )

    serving = _cert(pki.apiserver.cert)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "10.0.0.1"]
    usage = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert pki.service_account.cert.startswith(b"-----BEGIN PUBLIC KEY-----")


def test_certificate_without_a_usage_is_refused() -> None:
    """Asking for a cert that can neither serve nor authenticate is a programming error."""
    with pytest.raises(ValueError, match="server=True, client=True or both"):
        certs.issue(certs.certificate_authority(), "nobody")


def test_kubeconfig_embeds_ca_and_client_cert(tmp_path: Path) -> None:
    """The kubeconfig is self-contained, owner-only, and selects its one context."""
    ca = certs.certificate_authority()
    admin = certs.issue(ca, "me", organizations=("system:masters",), client=True)
    path = kubeconfig.write(
        tmp_path / "kc", kubeconfig.kubeconfig("https://127.0.0.1:6443", ca.cert, admin, "me")
    )
    data = yaml.safe_load(path.read_text())
    assert data["current-context"] == "me@kubeserve-dev"
    assert data["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(data["clusters"][0]["cluster"]["certificate-authority-data"]) == ca.cert
    assert base64.b64decode(data["users"][0]["user"]["client-key-data"]) == admin.key
    assert path.stat().st_mode & 0o077 == 0


def test_processes_start_detached_stop_by_pid_and_keep_logs(tmp_path: Path) -> None:
    """A started process is tracked by pid, logs stdout+stderr to its file, stops on request."""
    code = (
        "import sys, time; print('one', flush=True); "
        "print('two', file=sys.stderr, flush=True); time.sleep(60)"
    )
    proc = processes.start(
        "talker", [sys.executable, "-c", code], tmp_path / "logs" / "talker.log", ""
    )
    assert processes.is_running(proc)
    Retrying(
        stop=stop_after_delay(10),
        wait=wait_fixed(0.05),
        retry=retry_if_result(lambda text: text != "one\ntwo"),
    )(processes.log_tail, proc.log)

    assert processes.stop_all([proc], grace=5) == ["talker"]
    assert not processes.is_running(proc)
    assert processes.stop_all([proc]) == []
    assert processes.log_tail(proc.log) == "one\ntwo"
    assert processes.log_tail(tmp_path / "missing.log") == ""


def test_a_recycled_pid_is_not_mistaken_for_our_process() -> None:
    """A live pid running another program does not count as our component."""
    impostor = processes.Process("etcd", os.getpid(), ("/nonexistent/etcd",), "", "")
    assert not processes.is_running(impostor)
    assert processes.stop_all([impostor]) == []


def test_namespace_names_are_valid_and_unique() -> None:
    """Namespace names are DNS labels derived from the test name, never colliding."""
    long = "test_something[with-params-" + "x" * 80 + "]"
    names = {session.namespace_name(long) for _ in range(20)}
    assert len(names) == 20
    for name in names:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
        assert len(name) <= 63
        assert name.startswith("test-something-with-params-")
    assert re.fullmatch(r"test-[0-9a-f]{6}", session.namespace_name("___"))


def test_missing_go_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Go on PATH the build fails before doing anything, naming what is missing."""
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(build.BuildError, match=r"Go toolchain \('go'\) is not on PATH"):
        build.find_go()


@pytest.mark.skipif(shutil.which("go") is None, reason="needs the go tool")
def test_unreachable_module_is_reported_naming_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module the proxy cannot serve fails with the module, version and GOPROXY."""
    monkeypatch.setenv("GOPROXY", "off")
    go = build.Go(log=lambda _: None)
    with pytest.raises(
        build.BuildError, match=r"cannot fetch k8s\.io/kubernetes@v1\.0\.999 .*GOPROXY=off"
    ):
        go.download("k8s.io/kubernetes", "v1.0.999")


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``kubeserve`` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "kubeserve.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_cluster_up_without_go_and_without_a_cache_fails_clearly(tmp_path: Path) -> None:
    """`kubeserve cluster up` with nothing built and no Go: one clear line, exit 1."""
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent),
        "KUBESERVE_CACHE_DIR": str(tmp_path / "cache"),
        "KUBESERVE_CLUSTER_DIR": str(tmp_path / "cluster"),
    }
    result = _cli("cluster", "up", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("kubeserve cluster: the Go toolchain ('go') is not on PATH")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cluster").exists()


def test_cluster_status_and_down_without_a_cluster(tmp_path: Path) -> None:
    """`status` explains there is nothing to report; `down` is a harmless no-op."""
    env = {**os.environ, "KUBESERVE_CLUSTER_DIR": str(tmp_path / "none")}
    status = _cli("cluster", "status", env=env)
    assert status.returncode == 1
    assert "no cluster state in" in status.stderr
    assert "kubeserve cluster up" in status.stderr
    down = _cli("cluster", "down", env=env)
    assert (down.returncode, down.stdout.strip()) == (0, "nothing was running")


def test_cluster_env_prints_path_of_every_tool_folder(tmp_path: Path) -> None:
    """`env` output is shell: PATH with each cached tool folder; KUBECONFIG once up."""
    env = {
        **os.environ,
        "KUBESERVE_CACHE_DIR": str(tmp_path),
        "KUBESERVE_CLUSTER_DIR": str(tmp_path / "c"),
    }
    result = _cli("cluster", "env", env=env)
    assert result.returncode == 0
    line = result.stdout.strip()
    assert line.startswith("export PATH=")
    assert line.endswith(':"$PATH"')
    for name in ("kubernetes", "etcd", "kwok", "helm"):
        assert f"{tmp_path}/bin/{name}-v" in line
    assert "KUBECONFIG" not in result.stdout


def test_control_plane_flags_enable_the_security_features() -> None:
    """The API server runs RBAC, Pod Security, SA tokens; the KCM runs every controller."""
    layout = controlplane.Layout(Path("/state"))
    api = controlplane.apiserver_args(Path("/bin/kube-apiserver"), layout, 2379, 6443)
    assert "--authorization-mode=RBAC" in api
    assert "--bind-address=127.0.0.1" in api
    assert any(
        flag.startswith("--enable-admission-plugins=") and "PodSecurity" in flag for flag in api
    )
    assert "--service-account-signing-key-file=/state/pki/sa-key.pem" in api
    kcm = controlplane.controller_manager_args(Path("/bin/kcm"), layout, 10257)
    assert {"--controllers=*", "--use-service-account-credentials=true"} <= set(kcm)
    node = controlplane.fake_node()
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert "taints" not in node["spec"]
