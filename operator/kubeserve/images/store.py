"""The image cache: ``~/.cache/kubeserve/images/``, every entry named by a content key.

Limits: keys hash what the project controls (sources, the Dockerfile, pyproject's
dependency lists, the Debian release and package list); they do not see a new upload to
the Debian mirror or PyPI, so a cached layer keeps the package versions it was built
with until its inputs change or the cache folder is removed. That is the point (a code
change must not reinstall numpy), and the trade-off is stated here where it is made.

A build writes next to its final path and renames into place, and an exclusive file lock
serialises builders (two test sessions, a test and ``kubeserve image build``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path

from kubeserve.devcluster import build, versions


class ImageError(RuntimeError):
    """An image could not be built or imported; the message says what is missing or failed."""


KEY_LENGTH = 16
"""Hex digits of a cache key: 64 bits, plenty for a handful of local builds."""


def images_dir() -> Path:
    """Return the folder that holds image archives and layer folders."""
    return versions.cache_root() / "images"


def key(*parts: object) -> str:
    """Return a short stable hash of JSON-serialisable parts."""
    data = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:KEY_LENGTH]


def tree_key(root: Path, paths: Iterable[str]) -> str:
    """Return a hash of the named files and folders under ``root`` (names and bytes).

    Bytecode caches are skipped: they change with every import, not with the source.
    """
    sha = hashlib.sha256()
    for relative in sorted(paths):
        start = root / relative
        files = [start] if start.is_file() else sorted(p for p in start.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            sha.update(path.relative_to(root).as_posix().encode() + b"\0")
            sha.update(hashlib.sha256(path.read_bytes()).digest())
    return sha.hexdigest()[:KEY_LENGTH]


def archive_path(name: str, content_key: str) -> Path:
    """Return the archive path of image ``name`` built from inputs hashed to ``content_key``."""
    return images_dir() / f"{name}-{content_key}.tar"


def locked() -> AbstractContextManager[None]:
    """Hold the image cache's exclusive lock (the same file lock the Go builds use)."""
    return build._locked(images_dir())
