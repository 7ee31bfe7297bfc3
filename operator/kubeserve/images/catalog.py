"""The images kubeserve builds for a real node, and how each one is built or found cached.

``pause`` needs gcc and the Go module cache; ``runtime`` and ``operator`` need root
(debootstrap and chroot), the Debian mirror of this host's apt sources and PyPI.
Every image is an archive ``<name>-<key>.tar`` whose key hashes all of its inputs, so
asking for an image whose inputs did not change finds the archive and builds nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubeserve.images import pause, store

Log = Callable[[str], None]

NAMES = ("pause", "runtime", "operator")


@dataclass(frozen=True)
class Built:
    """One image archive, and whether this call built it or found it cached."""

    name: str
    path: Path
    reference: str
    cached: bool
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)
    """Seconds per step that ran (a cached step is absent)."""


def pause_archive() -> tuple[Path, Path]:
    """Return (the k8s.io/kubernetes module folder, the pause archive path)."""
    module = pause.module_dir()
    return module, store.archive_path("pause", pause.inputs_key(module))


def build_pause(log: Log) -> Built:
    """Build the pause image unless its archive is cached."""
    started = time.monotonic()
    module, target = pause_archive()
    with store.locked():
        if target.exists():
            return Built("pause", target, pause.REFERENCE, True, time.monotonic() - started)
        log(f"compiling pause from {module / pause.SOURCE}")
        pause.write_image(module, target)
    spent = time.monotonic() - started
    return Built("pause", target, pause.REFERENCE, False, spent, {"pause": spent})


def archive_of(name: str) -> Path:
    """Return the archive path image ``name`` has for the current inputs (built or not)."""
    if name == "pause":
        return pause_archive()[1]
    raise KeyError(name)


def build_image(name: str, log: Log) -> Built:
    """Build (or find cached) the image called ``name``."""
    if name == "pause":
        return build_pause(log)
    raise KeyError(name)
