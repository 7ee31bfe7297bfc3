"""The real node's container runtime: the host's containerd 1.6 and runc, run privately.

Limits first: containerd 1.x from the distribution (tested: Debian 12's 1.6.20), the
cgroupfs driver (no systemd here), and images only from local OCI archives (no registry
is ever contacted: pulls fail, so pods use ``imagePullPolicy: IfNotPresent`` with images
imported beforehand). Its config, content store, state and runc state live in the node's
own folder and its socket is its own (:data:`SOCKET`), so it never meets a containerd
the host may run; the shim sockets are the exception (containerd 1.6 puts them under
``/run/containerd/s``), which :mod:`~kubeserve.devcluster.hoststate` watches and removes.

``restrict_oom_score_adj`` is on because some sandboxes (this one) lack
CAP_SYS_RESOURCE: kubelet asks for ``oom_score_adj`` -998 for sandboxes and runc then
fails with "can't get final child's PID from pipe". With it, negative scores are clamped
at 0, which only changes OOM-kill ordering; on a normal host it is harmless.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from kubeserve.devcluster.host import CNI_DIR
from kubeserve.images.containerd import ContainerdError, ctr

SOCKET = Path("/run/kubeserve/containerd.sock")
"""containerd's socket: fixed and short, because a unix socket path (plus containerd's
``.ttrpc`` suffix) must stay under 104 bytes, which a test's temporary folder exceeds; one
real node per machine makes a fixed path safe."""
PAUSE_IMAGE = "kubeserve.local/pause:3.10"
"""The sandbox image; built from Kubernetes' pause.c and imported, never pulled."""


@dataclass(frozen=True)
class Paths:
    """containerd's files inside the node folder."""

    root: Path

    @property
    def config(self) -> Path:
        """Return the config file."""
        return self.root / "config.toml"

    @property
    def socket(self) -> Path:
        """Return the gRPC socket kubelet and ctr talk to (:data:`SOCKET`, whatever the root)."""
        return SOCKET

    @property
    def content(self) -> Path:
        """Return containerd's root (content store, snapshots, metadata)."""
        return self.root / "root"

    @property
    def state(self) -> Path:
        """Return containerd's state folder (task bundles)."""
        return self.root / "state"


def _quote(value: str | Path) -> str:
    """Return a TOML basic string (JSON's escapes are a subset TOML accepts)."""
    return json.dumps(str(value))


def config_toml(paths: Paths, cni_conf_dir: Path) -> str:
    """Return containerd's config: private root/state/socket, CRI on runc with cgroupfs."""
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    runc = f"{cri[:-1]}.containerd.runtimes.runc]"
    return f"""version = 2
root = {_quote(paths.content)}
state = {_quote(paths.state)}

[grpc]
  address = {_quote(paths.socket)}

{cri}
  sandbox_image = {_quote(PAUSE_IMAGE)}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  restrict_oom_score_adj = true

{cri[:-1]}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

{runc}
  runtime_type = "io.containerd.runc.v2"

{runc[:-1]}.options]
  SystemdCgroup = false
  Root = {_quote(paths.state / "runc")}

{cri[:-1]}.cni]
  bin_dir = {_quote(CNI_DIR)}
  conf_dir = {_quote(cni_conf_dir)}
  max_conf_num = 1
"""


def write_config(paths: Paths, cni_conf_dir: Path) -> None:
    """Write the config file and create containerd's folders."""
    for folder in (paths.content, paths.state):
        folder.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(config_toml(paths, cni_conf_dir))


def argv(paths: Paths) -> list[str]:
    """Return containerd's command line."""
    binary = shutil.which("containerd") or "containerd"
    return [binary, "--config", str(paths.config)]


def probe(paths: Paths) -> str:
    """Return 'ok' when containerd answers on its socket, else why not."""
    if not paths.socket.exists():
        return f"no socket at {paths.socket}"
    try:
        ctr(paths.socket, "version")
    except ContainerdError as exc:
        return str(exc)[:300]
    return "ok"
