"""Run a shell script in a chroot over an overlay of layer folders, capturing its changes.

Limits: root only, Linux overlayfs only. Everything happens in a private mount namespace
(``unshare --mount``), so every mount disappears with the process, even when it crashes:
nothing is left mounted on the host and no cleanup step can be forgotten.

Inside, ``/tmp`` is a fresh tmpfs (nothing written there reaches the layer), ``/proc``
and ``/dev`` are the usual ones, ``/etc/resolv.conf`` is the host's (bound over the
base's empty file) and an optional host folder is bound read-only at :data:`SHARED`.
What the script changes elsewhere lands in ``upper`` as an overlayfs upper folder, which
:mod:`kubeserve.images.archive` turns into a layer (whiteouts included).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from kubeserve.images import store

SHARED = "/tmp/build"
"""Where the host folder of wheels, requirements and CA roots appears in the chroot."""

MOUNTS = """set -e
merged=$1; shift
mount -t overlay overlay -o "lowerdir=$KS_LOWER,upperdir=$KS_UPPER,workdir=$KS_WORK" "$merged"
mount -t tmpfs -o mode=1777 tmpfs "$merged/tmp"
mount -t proc proc "$merged/proc"
mount --rbind /dev "$merged/dev"
mount --bind /etc/resolv.conf "$merged/etc/resolv.conf"
if [ -n "$KS_SHARED" ]; then
  mkdir -p "$merged$KS_SHARED_AT"
  mount --bind -o ro "$KS_SHARED" "$merged$KS_SHARED_AT"
fi
exec chroot "$merged" "$@"
"""
"""The mount steps, run by ``sh`` inside ``unshare --mount --propagation private``."""


class ChrootError(store.ImageError):
    """A script in the chroot failed; the message carries its output's tail."""


def run_in_overlay(
    lowers: Sequence[Path],
    upper: Path,
    script: str,
    env: Mapping[str, str],
    shared: Path | None = None,
) -> str:
    """Run ``script`` with ``sh -e`` as root in a chroot of ``lowers`` (top first).

    Changes land in ``upper`` (created empty if missing). The environment is exactly
    ``env``. Returns the script's combined output; raises ChrootError when it fails.
    """
    for tool in ("unshare", "chroot", "mount"):
        if shutil.which(tool) is None:
            raise ChrootError(f"`{tool}` is not on PATH")
    if os.geteuid() != 0:
        raise ChrootError("building image layers needs root (mounts and chroot)")
    upper.mkdir(parents=True, exist_ok=True)
    work = upper.with_name(upper.name + ".work")
    merged = upper.with_name(upper.name + ".merged")
    for folder in (work, merged):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
    inner = ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()), "/bin/sh", "-ec"]
    command = [
        *("unshare", "--mount", "--propagation", "private", "sh", "-c", MOUNTS, "sh"),
        *(str(merged), *inner, script),
    ]
    mounts_env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "KS_LOWER": ":".join(str(path) for path in lowers),
        "KS_UPPER": str(upper),
        "KS_WORK": str(work),
        "KS_SHARED": str(shared) if shared else "",
        "KS_SHARED_AT": SHARED,
    }
    try:
        result = subprocess.run(
            command, env=mounts_env, capture_output=True, text=True, check=False
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        merged.rmdir()
    output = result.stdout + result.stderr
    if result.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-30:])
        raise ChrootError(f"the build script failed in the chroot:\n{script}\n--- output:\n{tail}")
    return output
