"""Path safety: remote names (object keys, archive members, SHA256SUMS entries) may
never place a file outside the directory they are written to."""

from __future__ import annotations

from pathlib import Path, PurePosixPath


def relative_parts(relative: str) -> tuple[str, ...] | None:
    """The components of a relative POSIX path (``.`` and empty ones dropped), or None
    when it is absolute, climbs with ``..`` or holds a backslash or NUL."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or "\\" in relative or "\x00" in relative:
        return None
    return pure.parts


def safe_join(root: Path, relative: str) -> Path | None:
    """Return root/relative, or None when relative is absolute, empty or climbs out."""
    parts = relative_parts(relative)
    if not parts:
        return None
    return root.joinpath(*parts)
