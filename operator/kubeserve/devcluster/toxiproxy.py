"""A toxiproxy server in front of the API server: TCP faults for the operator's traffic.

Limits first: toxiproxy works on TCP, below TLS, so it can delay, cut and reset
connections but cannot change HTTP answers (409s come from an admission webhook, see
:mod:`kubeserve.devcluster.faults`). Only clients given :func:`proxied_kubeconfig` go
through it; the test's own client talks to the API server directly, so the test can
always see the truth while the operator suffers.

The server is the pinned ``toxiproxy-server`` built from the Go module proxy like the
control plane (``versions.TOXIPROXY``), one process per :class:`ToxiProxy`, on free
loopback ports, driven through its HTTP API.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import httpx
import yaml
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from kubeserve.devcluster import build, kubeconfig, ports

PROXY_NAME = "kube-apiserver"
START_TIMEOUT = 30.0


def proxied_kubeconfig(source: Path, target: Path, server: str) -> Path:
    """Copy the kubeconfig at `source` to `target` with every cluster's server replaced."""
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    for cluster in config.get("clusters") or []:
        cluster["cluster"]["server"] = server
    return kubeconfig.write(target, config)


class ToxiProxy:
    """A running toxiproxy-server with one proxy, ``listen`` -> ``upstream`` (host:port)."""

    def __init__(self, upstream: str, log_path: Path) -> None:
        self.upstream = upstream
        self.log_path = log_path
        picked = ports.pick_ports({"api": 0, "proxy": 0})
        self.api_port = picked["api"]
        self.listen = f"{ports.HOST}:{picked['proxy']}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(base_url=f"http://{ports.HOST}:{self.api_port}", timeout=10)
        self._toxics = 0

    def start(self) -> Self:
        """Start the server and create the proxy (enabled, no toxics)."""
        argv = [
            str(build.binary("toxiproxy-server")),
            "-host",
            ports.HOST,
            "-port",
            str(self.api_port),
        ]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        Retrying(
            stop=stop_after_delay(START_TIMEOUT),
            wait=wait_fixed(0.1),
            retry=retry_if_exception_type(httpx.TransportError),
            reraise=True,
        )(self._http.get, "/version")
        self._call(
            "POST",
            "/proxies",
            {"name": PROXY_NAME, "listen": self.listen, "upstream": self.upstream},
        )
        return self

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One API call; a failure names the call and toxiproxy's answer."""
        response = self._http.request(method, path, json=body)
        if response.is_error:
            raise RuntimeError(f"toxiproxy {method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    @property
    def server(self) -> str:
        """The URL clients use instead of the API server's."""
        return f"https://{self.listen}"

    def add_toxic(
        self,
        kind: str,
        attributes: dict[str, Any],
        *,
        stream: str = "downstream",
        toxicity: float = 1.0,
    ) -> str:
        """Add a toxic (latency, reset_peer, timeout, ...); return its name."""
        self._toxics += 1
        name = f"{kind}-{self._toxics}"
        body = {
            "name": name,
            "type": kind,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes,
        }
        self._call("POST", f"/proxies/{PROXY_NAME}/toxics", body)
        return name

    def remove_toxic(self, name: str) -> None:
        """Remove one toxic."""
        self._call("DELETE", f"/proxies/{PROXY_NAME}/toxics/{name}")

    @contextmanager
    def toxic(
        self, kind: str, attributes: dict[str, Any], *, stream: str = "downstream"
    ) -> Iterator[str]:
        """A toxic for the duration of a ``with`` block."""
        name = self.add_toxic(kind, attributes, stream=stream)
        try:
            yield name
        finally:
            self.remove_toxic(name)

    def set_enabled(self, enabled: bool) -> None:
        """Disable (close every connection, refuse new ones) or re-enable the proxy."""
        self._call("POST", f"/proxies/{PROXY_NAME}", {"enabled": enabled})

    @contextmanager
    def disabled(self) -> Iterator[None]:
        """The proxy cut (connections closed, new ones refused) for a ``with`` block."""
        self.set_enabled(False)
        try:
            yield
        finally:
            self.set_enabled(True)

    def stop(self) -> None:
        """Stop the server (connections through it close)."""
        self._http.close()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
