"""SHA-256 verification: a single expected digest, or a ``SHA256SUMS`` manifest.

``SHA256SUMS`` uses the ``sha256sum`` output format (``HEX  path`` or ``HEX *path``);
blank lines and ``#`` comments are ignored. Every listed file must exist and match;
files not listed are allowed, as with ``sha256sum --check``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from kubeserve_runtime.storage.chunk import CHUNK_BYTES
from kubeserve_runtime.storage.paths import safe_join

MANIFEST = "SHA256SUMS"
_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


class ChecksumError(Exception):
    """A digest did not match or a manifest could not be used."""


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, expected: str) -> None:
    """Raise ChecksumError unless the file's SHA-256 equals expected."""
    actual = file_sha256(path)
    if actual != expected.lower():
        raise ChecksumError(f"checksum mismatch for {path.name}: expected {expected}, got {actual}")


def parse_manifest(text: str) -> list[tuple[str, str]]:
    """Return (digest, relative path) pairs from SHA256SUMS text."""
    entries: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.rstrip("\r")
        if not stripped.strip() or stripped.lstrip().startswith("#"):
            continue
        match = _LINE.match(stripped)
        if match is None:
            raise ChecksumError(f"{MANIFEST} line {number} is not 'HEX  path': {stripped[:80]!r}")
        entries.append((match.group(1).lower(), match.group(2)))
    return entries


def verify_manifest(root: Path) -> int:
    """Verify root/SHA256SUMS when present; return how many files were checked."""
    manifest = root / MANIFEST
    if not manifest.is_file():
        return 0
    entries = parse_manifest(manifest.read_text(encoding="utf-8"))
    for expected, relative in entries:
        path = safe_join(root, relative)
        if path is None:
            raise ChecksumError(f"{MANIFEST} names a path outside the model: {relative!r}")
        if not path.is_file():
            raise ChecksumError(f"{MANIFEST} lists {relative!r}, which the source does not have")
        actual = file_sha256(path)
        if actual != expected:
            raise ChecksumError(
                f"checksum mismatch for {relative}: expected {expected}, got {actual}"
            )
    return len(entries)
