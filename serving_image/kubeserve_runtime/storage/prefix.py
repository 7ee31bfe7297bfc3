"""Bucket prefixes (s3:// and gs://): every object under ``KEY/`` lands at its path
relative to the prefix, so ``iris/v1`` never picks up ``iris/v10/``. Names that would
climb out of the staging directory are refused; "directory" marker objects skipped."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from kubeserve_runtime.storage.errors import StorageError
from kubeserve_runtime.storage.paths import safe_join
from kubeserve_runtime.storage.uri import SourceURI


def prefix_of(key: str) -> str:
    """The listing prefix for a key: ``key/`` (the whole bucket for an empty key)."""
    return f"{key.rstrip('/')}/" if key else ""


def place_objects(
    source: SourceURI,
    staging: Path,
    names: Iterable[str],
    fetch_one: Callable[[str, Path], None],
) -> None:
    """Fetch every listed object under the source's prefix to its place in staging."""
    prefix = prefix_of(source.key)
    count = 0
    for name in names:
        relative = name[len(prefix) :]
        if not relative or relative.endswith("/"):
            continue
        target = safe_join(staging, relative)
        if target is None:
            raise StorageError(source.raw, f"object name escapes the prefix: {name!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        fetch_one(name, target)
        count += 1
    if count == 0:
        raise StorageError(
            source.raw,
            f"no object {source.key!r} and no objects under {prefix!r} in bucket {source.netloc!r}",
        )
