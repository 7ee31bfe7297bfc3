"""Safe unpacking of ``.tar``, ``.tar.gz``/``.tgz`` and ``.zip`` model archives.

Tar archives go through the standard library's ``data`` extraction filter (no absolute
paths, no ``..``, no links that leave the target, no devices, no setuid bits). Zip
members are checked the same way before anything is written; symlinks are refused.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from pathlib import Path

from kubeserve_runtime.storage.paths import safe_join

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class ArchiveError(Exception):
    """An archive is corrupt or tries to write outside its target."""


def is_archive(name: str) -> bool:
    """Whether a file name denotes an archive that is unpacked after download."""
    lowered = name.lower()
    return lowered.endswith(".zip") or lowered.endswith(_TAR_SUFFIXES)


def extract(archive: Path, target: Path) -> None:
    """Unpack archive into target (which must exist), refusing unsafe members."""
    if archive.name.lower().endswith(".zip"):
        _extract_zip(archive, target)
    else:
        _extract_tar(archive, target)


def _extract_tar(archive: Path, target: Path) -> None:
    """Unpack a tar archive with the ``data`` filter."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except tarfile.FilterError as exc:
        raise ArchiveError(f"unsafe member in {archive.name}: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"cannot unpack {archive.name}: {exc}") from exc


def _extract_zip(archive: Path, target: Path) -> None:
    """Unpack a zip archive after checking every member name and type."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                if safe_join(target, info.filename.rstrip("/")) is None:
                    raise ArchiveError(f"unsafe member in {archive.name}: {info.filename!r}")
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise ArchiveError(
                        f"symlink member refused in {archive.name}: {info.filename!r}"
                    )
            for info in members:
                zf.extract(info, target)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"cannot unpack {archive.name}: {exc}") from exc
