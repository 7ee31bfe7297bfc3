"""The pod sandbox ("pause") image, compiled from the Kubernetes module's own ``pause.c``.

Limits: needs ``gcc`` with a static libc (Debian's ``libc6-dev``) and the Go toolchain to
fetch ``k8s.io/kubernetes`` at :data:`versions.KUBERNETES` (already in the module cache
after ``kubeserve cluster build``). The reference stays ``kubeserve.local/pause:3.10``
because the node's containerd config names it as its sandbox image; the binary's own
version string follows the module's ``build/pause/Makefile`` ``TAG``.

The compiler flags are upstream's (``-Os -Wall -Werror -static``), the user is upstream's
65535, and the image is one layer holding one stripped binary (under 1 MB).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from kubeserve.devcluster import build, versions
from kubeserve.images import archive, store

REFERENCE = "kubeserve.local/pause:3.10"
"""The name the node's containerd config uses as ``sandbox_image``."""

SOURCE = "build/pause/linux/pause.c"
MAKEFILE = "build/pause/Makefile"
USER = "65535:65535"
CFLAGS = ("-Os", "-Wall", "-Werror", "-static")
"""Upstream's flags from ``build/pause/Makefile`` (its ``-DVERSION`` is added per tag)."""


class PauseError(store.ImageError):
    """The pause binary could not be compiled; the message says what is missing."""


def module_dir() -> Path:
    """Return the k8s.io/kubernetes module folder (downloaded through the Go proxy)."""
    try:
        info = build.Go(log=lambda _: None).download("k8s.io/kubernetes", versions.KUBERNETES)
    except build.BuildError as exc:
        raise PauseError(str(exc)) from exc
    return Path(info["Dir"])


def upstream_tag(makefile: str) -> str:
    """Return the ``TAG ?= 3.10.1`` value of upstream's pause Makefile."""
    match = re.search(r"^TAG\s*\?=\s*(\S+)\s*$", makefile, re.MULTILINE)
    if match is None:
        raise PauseError("no `TAG ?=` line in the pause Makefile")
    return match.group(1)


def compiler_command(source: Path, output: Path, tag: str) -> list[str]:
    """Return the gcc command line for one pause binary."""
    return ["gcc", *CFLAGS, f"-DVERSION=v{tag}-kubeserve", "-o", str(output), str(source)]


def compile_pause(module: Path, output: Path) -> None:
    """Compile and strip ``pause`` from the module's source into ``output``."""
    for tool in ("gcc", "strip"):
        if shutil.which(tool) is None:
            raise PauseError(f"`{tool}` is not on PATH (Debian: apt-get install gcc libc6-dev)")
    tag = upstream_tag((module / MAKEFILE).read_text())
    for command in (compiler_command(module / SOURCE, output, tag), ["strip", str(output)]):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PauseError(f"`{' '.join(command)}` failed:\n{result.stderr.strip()}")


def inputs_key(module: Path) -> str:
    """Return the cache key of the pause image: its source, flags, compiler and name."""
    compiler = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=False)
    return store.key(
        (module / SOURCE).read_text(),
        upstream_tag((module / MAKEFILE).read_text()),
        CFLAGS,
        compiler.stdout.splitlines()[:1],
        REFERENCE,
        USER,
    )


def write_image(module: Path, target: Path) -> archive.Written:
    """Compile pause and write its one-layer archive to ``target``."""
    with tempfile.TemporaryDirectory(prefix="kubeserve-pause-") as tmp:
        rootfs = Path(tmp)
        binary = rootfs / "pause"
        compile_pause(module, binary)
        binary.chmod(0o755)
        config = archive.ImageConfig(entrypoint=("/pause",), user=USER)
        return archive.write_archive(target, REFERENCE, [archive.Layer(rootfs)], config)
