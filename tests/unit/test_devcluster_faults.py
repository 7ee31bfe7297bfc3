"""The fault tools on their own: the real toxiproxy-server, the 409 webhook's decisions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

from kubeserve.devcluster import build, faults, kubeconfig
from kubeserve.devcluster.certs import certificate_authority, issue
from kubeserve.devcluster.toxiproxy import ToxiProxy, proxied_kubeconfig


@pytest.fixture
def upstream() -> Iterator[str]:
    """A plain HTTP server on loopback answering 200 "ok"; yields host:port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(upstream: str, tmp_path: Path) -> Iterator[ToxiProxy]:
    """The pinned toxiproxy-server (built if missing) in front of `upstream`."""
    build.ensure_built()
    started = ToxiProxy(upstream, tmp_path / "toxiproxy.log").start()
    try:
        yield started
    finally:
        started.stop()


def fetch(proxy: ToxiProxy) -> str:
    """GET / through the proxy on a fresh connection."""
    return httpx.get(f"http://{proxy.listen}/", timeout=10).text


def test_proxy_passes_traffic_and_injects_resets_and_cuts(proxy: ToxiProxy) -> None:
    """Through the proxy: served; with reset_peer: reset; disabled: refused; then served."""
    assert fetch(proxy) == "ok"
    with proxy.toxic("reset_peer", {"timeout": 0}), pytest.raises(httpx.TransportError):
        fetch(proxy)
    assert fetch(proxy) == "ok"
    with proxy.disabled(), pytest.raises(httpx.ConnectError):
        fetch(proxy)
    with proxy.toxic("latency", {"latency": 50}):
        assert fetch(proxy) == "ok"


def test_unknown_toxic_is_refused_with_toxiproxys_answer(proxy: ToxiProxy) -> None:
    """A mistake in a test's fault names the call and the server's reason."""
    with pytest.raises(RuntimeError, match=r"toxiproxy POST .*/toxics: 400"):
        proxy.add_toxic("earthquake", {})


def test_proxied_kubeconfig_points_every_cluster_at_the_proxy(tmp_path: Path) -> None:
    """Same credentials and CA, another server URL; the copy is private to its owner."""
    ca = certificate_authority()
    pair = issue(ca, "admin", client=True)
    source = kubeconfig.write(
        tmp_path / "admin", kubeconfig.kubeconfig("https://127.0.0.1:6443", ca.cert, pair, "u")
    )
    target = proxied_kubeconfig(source, tmp_path / "proxied", "https://127.0.0.1:7000")
    before, after = yaml.safe_load(source.read_text()), yaml.safe_load(target.read_text())
    assert after["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:7000"
    after["clusters"][0]["cluster"]["server"] = before["clusters"][0]["cluster"]["server"]
    assert after == before
    assert target.stat().st_mode & 0o077 == 0


def review(manager: str | None, uid: str = "u1") -> dict[str, Any]:
    """An AdmissionReview request as the API server sends it."""
    options = {} if manager is None else {"fieldManager": manager}
    return {"request": {"uid": uid, "options": options}}


def test_admission_faults_touch_only_the_named_manager() -> None:
    """The first `conflicts` writes of the manager get 409 and all of its writes wait."""
    hook = faults.AdmissionFaults(
        client.ApiClient(), "ns", field_manager="kubeserve", conflicts=2, delay=1.5
    )
    managers = ["kubectl", "kubeserve", None, "kubeserve", "kubeserve"]
    decided = [hook.decide(review(m, str(i))) for i, m in enumerate(managers)]
    answers = [answer["response"] for answer, _ in decided]
    assert [a["allowed"] for a in answers] == [True, False, True, False, True]
    assert [a["uid"] for a in answers] == ["0", "1", "2", "3", "4"]
    assert [delay for _, delay in decided] == [0.0, 1.5, 0.0, 1.5, 1.5]
    assert answers[1]["status"]["code"] == 409
    assert answers[1]["status"]["reason"] == "Conflict"
    assert hook.refused == 2
    hook.delay = 0
    assert hook.decide(review("kubeserve"))[1] == 0
    hook.decide(review(faults.AdmissionFaults.PROBE_MANAGER))
    assert hook.probes == 1
