"""Import image archives into a containerd, in the namespace the kubelet's CRI uses.

Limits: uses the ``ctr`` client shipped with Debian's containerd package and talks to
the socket given (the node's own containerd, never a system one by default). Images are
imported unpacked into containerd's default snapshotter, which is the node's
``overlayfs``; no tags are added because every archive already carries the exact name
the pods use (``kubeserve.local/pause:3.10``, the operator's default runtime image, the
chart's default operator image), so ``imagePullPolicy: IfNotPresent`` finds them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from kubeserve.images import store
from kubeserve.images.archive import read_index_name

NAMESPACE = "k8s.io"
"""The containerd namespace the CRI plugin (and so the kubelet) reads images from."""


class ContainerdError(store.ImageError):
    """An archive could not be imported; the message carries ctr's own words."""


def ctr(address: Path, *args: str) -> str:
    """Run ``ctr -a ADDRESS -n k8s.io ARGS`` and return stdout."""
    binary = shutil.which("ctr")
    if binary is None:
        raise ContainerdError("`ctr` is not on PATH (kubeserve cluster prepare-host installs it)")
    command = [binary, "--address", str(address), "--namespace", NAMESPACE, *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ContainerdError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
    return result.stdout


def import_image(address: Path, archive: Path) -> list[str]:
    """Import one OCI archive into the containerd at ``address``; return the names it now has.

    Every name comes from the archive's index annotation, and each is checked to be listed
    by containerd afterwards, so a silently skipped import is an error here.
    """
    names = [read_index_name(archive)]
    ctr(address, "images", "import", str(archive))
    present = set(ctr(address, "images", "list", "--quiet").split())
    missing = [name for name in names if name not in present]
    if missing:
        raise ContainerdError(f"containerd does not list {missing} after importing {archive}")
    return names
