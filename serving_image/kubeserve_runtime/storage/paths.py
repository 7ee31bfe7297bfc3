"""Path safety: remote names (object keys, archive members, SHA256SUMS entries) may
never place a file outside the directory they are written to."""

from __future__ import annotations

from pathlib import Path, PurePosixPath


def safe_join(root: Path, relative: str) -> Path | None:
    """Return root/relative, or None when relative is absolute, empty or climbs out."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or not pure.parts or any(p in ("..", "") for p in pure.parts):
        return None
    if "\\" in relative or "\x00" in relative:
        return None
    return root.joinpath(*pure.parts)
