"""``file://`` and ``pvc://`` sources: a path on a mounted filesystem.

``pvc://NAME/path`` maps to ``<pvc root>/NAME/path`` (default ``/mnt/pvc``, where the
operator mounts each claim read-only). A directory's entries, or a single file, are
copied into the staging area; with ``--link`` they are symlinked instead, which avoids
copying large models that already sit on a volume.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kubeserve_runtime.storage.errors import StorageError
from kubeserve_runtime.storage.options import DownloadOptions
from kubeserve_runtime.storage.quota import Quota
from kubeserve_runtime.storage.uri import SourceURI


def local_path(source: SourceURI, options: DownloadOptions) -> Path:
    """Return the filesystem path a file:// or pvc:// URI names."""
    if source.scheme == "pvc":
        return options.pvc_root / source.netloc / source.key
    return Path(source.path)


def fetch(source: SourceURI, staging: Path, options: DownloadOptions, quota: Quota) -> Path | None:
    """Copy (or link) the local source into staging; return the file for a single file.
    Copies charge the quota file by file before copying; links cost nothing."""
    path = local_path(source, options)
    if not path.exists():
        hint = f" (is PVC {source.netloc!r} mounted at {options.pvc_root / source.netloc}?)"
        raise StorageError(
            source.raw, f"no such file or directory: {path}{hint if source.scheme == 'pvc' else ''}"
        )

    def copy(src: str, dst: str) -> object:
        size = os.stat(src).st_size
        quota.charge(size, f"{Path(src).name} ({size} bytes)")
        return shutil.copy2(src, dst)

    def place(src: Path, dst: Path) -> None:
        if options.link:
            dst.symlink_to(src.resolve())
        elif src.is_dir():
            shutil.copytree(src, dst, copy_function=copy)
        else:
            copy(str(src), str(dst))

    try:
        if path.is_dir():
            for entry in sorted(path.iterdir()):
                place(entry, staging / entry.name)
            return None
        target = staging / path.name
        place(path, target)
        return target
    except PermissionError as exc:
        raise StorageError(source.raw, f"permission denied: {exc.filename}") from exc
