"""``file://`` and ``pvc://`` sources: a path on a mounted filesystem.

``pvc://NAME/path`` maps to ``<pvc root>/NAME/path`` (default ``/mnt/pvc``, where the
operator mounts each claim read-only). A directory's entries, or a single file, are
copied into the staging area; with ``--link`` they are symlinked instead, which avoids
copying large models that already sit on a volume.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kubeserve_runtime.storage.errors import StorageError
from kubeserve_runtime.storage.options import DownloadOptions
from kubeserve_runtime.storage.uri import SourceURI


def local_path(source: SourceURI, options: DownloadOptions) -> Path:
    """Return the filesystem path a file:// or pvc:// URI names."""
    if source.scheme == "pvc":
        return options.pvc_root / source.netloc / source.key
    return Path(source.path)


def fetch(source: SourceURI, staging: Path, options: DownloadOptions) -> Path | None:
    """Copy (or link) the local source into staging; return the file for a single file."""
    path = local_path(source, options)
    if not path.exists():
        hint = f" (is PVC {source.netloc!r} mounted at {options.pvc_root / source.netloc}?)"
        raise StorageError(
            source.raw, f"no such file or directory: {path}{hint if source.scheme == 'pvc' else ''}"
        )
    try:
        if path.is_dir():
            for entry in sorted(path.iterdir()):
                _place(entry, staging / entry.name, options.link)
            return None
        target = staging / path.name
        _place(path, target, options.link)
        return target
    except PermissionError as exc:
        raise StorageError(source.raw, f"permission denied: {exc.filename}") from exc


def _place(src: Path, dst: Path, link: bool) -> None:
    """Symlink or copy one entry (file or directory tree)."""
    if link:
        dst.symlink_to(src.resolve())
    elif src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)
