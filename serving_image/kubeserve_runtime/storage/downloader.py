"""The download pipeline: stage, fetch, verify, unpack, verify again, commit.

1. A hidden staging directory is created inside DIR (same filesystem, so the final
   moves are renames).
2. The backend for the URI's scheme fills it. A single-file source returns that file.
3. A ``#sha256=`` fragment is checked against that single file (an archive is checked
   before it is unpacked).
4. A single archive (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``...) is unpacked safely
   into a fresh directory beside it (``archive.py``) and removed.
5. A ``SHA256SUMS`` file at the root of the result is verified.
6. Only then are the staged entries renamed into DIR. Any failure removes the staging
   directory (and DIR itself when this run created it), so no partial model is left.

Every byte written in 2 and 4 is charged to one ``Quota`` (``KUBESERVE_MAX_MODEL_BYTES``):
a model that would not fit fails with a message, and is removed like any failure.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from kubeserve_runtime.storage import gcs, local, s3, web
from kubeserve_runtime.storage.archive import ArchiveError, extract, is_archive
from kubeserve_runtime.storage.checksum import ChecksumError, verify_file, verify_manifest
from kubeserve_runtime.storage.errors import StorageError
from kubeserve_runtime.storage.options import DownloadOptions
from kubeserve_runtime.storage.quota import Quota, QuotaExceeded
from kubeserve_runtime.storage.redaction import redact_uri
from kubeserve_runtime.storage.uri import SourceURI, parse_uri

log = logging.getLogger(__name__)

Fetcher = Callable[[SourceURI, Path, DownloadOptions, Quota], "Path | None"]
UNPACKED = ".unpacked"

FETCHERS: dict[str, Fetcher] = {
    "s3": s3.fetch,
    "gs": gcs.fetch,
    "https": web.fetch,
    "http": web.fetch,
    "file": local.fetch,
    "pvc": local.fetch,
}


def download(uri: str, dest: Path, options: DownloadOptions | None = None) -> list[Path]:
    """Download uri into dest and return the top-level entries placed there."""
    opts = options or DownloadOptions.from_environment()
    source = parse_uri(uri)
    created = not dest.exists()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(uri, f"cannot create {dest}: {exc.strerror or exc}") from exc
    if not dest.is_dir():
        raise StorageError(uri, f"destination {dest} is not a directory")
    staging = Path(tempfile.mkdtemp(prefix=".kubeserve-download-", dir=dest))
    try:
        root = _fill(source, staging, opts, Quota(opts.max_bytes))
        placed = _commit(root, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    shutil.rmtree(staging)
    shown = redact_uri(source.without_fragment)
    log.info("downloaded %s into %s: %s", shown, dest, [p.name for p in placed])
    return placed


def _fill(source: SourceURI, staging: Path, options: DownloadOptions, quota: Quota) -> Path:
    """Fetch, verify and unpack the source under staging; return the model's root."""
    try:
        single = FETCHERS[source.scheme](source, staging, options, quota)
        if source.sha256 is not None:
            if single is None:
                raise StorageError(
                    source.raw,
                    "#sha256= needs a URI naming one file; use a SHA256SUMS file for directories",
                )
            verify_file(single, source.sha256)
        root = staging
        if single is not None and is_archive(single.name):
            root = staging / UNPACKED
            root.mkdir()
            extract(single, root, quota)
            single.unlink()
        verify_manifest(root)
    except (ChecksumError, ArchiveError, QuotaExceeded) as exc:
        raise StorageError(source.raw, str(exc)) from exc
    return root


def _commit(root: Path, dest: Path) -> list[Path]:
    """Move the model's entries from root into dest, replacing entries of the same name."""
    placed: list[Path] = []
    for entry in sorted(root.iterdir()):
        target = dest / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        entry.rename(target)
        placed.append(target)
    return placed
