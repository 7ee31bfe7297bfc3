"""Safe unpacking of ``.zip`` and ``.tar`` (plain, ``.gz``/``.tgz``, ``.bz2``, ``.xz``)
model archives.

Limits: at most ``MAX_MEMBERS`` members (10,000: model folders hold tens to hundreds of
files; the cap bounds inodes and the per-file block overhead that byte counting misses),
and the members' total size must fit the model quota (``quota.py``). Both are checked
while the member list is read, before anything is written, so a bomb stops at its
headers. A zip's central directory is read whole first (``zipfile`` has no lazy mode),
so a zip with millions of entries costs memory, not disk, before it is refused.

Why not ``tarfile``'s extraction filter: the ``data`` filter had bypasses until 3.11.13
(CVE-2025-4517 and related: symlink chains that outgrow PATH_MAX so ``realpath`` stops
resolving, hard links to outside, a symlink and then a file written through it) and
does not exist at all before 3.11.4 (``filter=`` is a TypeError). So members are checked
here, by name only, never by resolving paths on disk (what those bypasses fooled), and
written by this module:

- a name is relative, without ``..``, backslash or NUL (``./`` prefixes are fine);
- each name appears once, and no member lies below a file, symlink or hard link member,
  so nothing is ever written through a link;
- a symlink's target is relative and is resolved lexically from the link's directory;
  it must stay inside, pass only through directories of the archive, and end at a file
  or directory of the archive (not at another link, not at nothing). With no link on
  the way, lexical resolution is what the kernel does, and as the target is the
  archive's own, nothing already in DIR can redirect it;
- a hard link names an earlier regular file of the archive;
- devices, FIFOs and every other type are refused.

Files are created with ``O_EXCL | O_NOFOLLOW`` and mode 0644 or 0755 (no setuid bits,
no group or world write, owner not restored), each copied up to its declared size;
symlinks are made last, once every file and directory exists, so no write can follow
one even if a check above were wrong.
"""

from __future__ import annotations

import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from kubeserve_runtime.storage.chunk import CHUNK_BYTES
from kubeserve_runtime.storage.paths import relative_parts
from kubeserve_runtime.storage.quota import Quota

MAX_MEMBERS = 10_000
MAX_LINK_TARGET = 4096
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
# What a corrupt or unsupported archive raises while it is read: RuntimeError is an
# encrypted zip member, NotImplementedError an unknown zip compression method.
_UNREADABLE = (
    tarfile.TarError,
    zipfile.BadZipFile,
    EOFError,
    OSError,
    zlib.error,
    lzma.LZMAError,
    RuntimeError,
    NotImplementedError,
    UnicodeDecodeError,
)

Kind = Literal["file", "dir", "symlink", "hardlink"]


class ArchiveError(Exception):
    """An archive is corrupt, too large, or holds a member that could leave its target."""


@dataclass(frozen=True)
class Entry:
    """One member as this module understands it."""

    name: str  # normalized "a/b"; "" is the archive's root
    kind: Kind
    size: int = 0  # bytes written: regular files only
    link: str = ""  # symlink: the target as written; hard link: the member it names
    executable: bool = False


def is_archive(name: str) -> bool:
    """Whether a file name denotes an archive that is unpacked after download."""
    lowered = name.lower()
    return lowered.endswith(".zip") or lowered.endswith(_TAR_SUFFIXES)


def extract(archive: Path, target: Path, quota: Quota) -> None:
    """Unpack archive into target (an existing, empty directory), refusing unsafe or
    oversized archives before writing anything, and charge the quota for its contents."""
    try:
        if archive.name.lower().endswith(".zip"):
            _extract_zip(archive, target, quota)
        else:
            _extract_tar(archive, target, quota)
    except _UNREADABLE as exc:
        raise ArchiveError(f"cannot unpack {archive.name}: {exc}") from exc


class Inventory:
    """The checked member list of one archive, built one member at a time."""

    def __init__(self, archive: str, quota: Quota) -> None:
        self.archive = archive
        self.quota = quota
        self.entries: dict[str, Entry] = {}
        self.dirs: set[str] = {""}  # explicit and implied directories
        self.size = 0

    def add(self, entry: Entry) -> None:
        """Accept one member or raise ArchiveError (QuotaExceeded when too large)."""
        if entry.kind == "dir" and not entry.name:
            return
        if len(self.entries) >= MAX_MEMBERS:
            raise ArchiveError(f"{self.archive} has more than {MAX_MEMBERS} members")
        if entry.name in self.entries:
            raise ArchiveError(f"duplicate member in {self.archive}: {entry.name!r}")
        if entry.kind != "dir" and entry.name in self.dirs:
            raise ArchiveError(
                f"{entry.kind} member {entry.name!r} in {self.archive} is also a directory"
            )
        parents = entry.name.split("/")[:-1]
        for depth in range(1, len(parents) + 1):
            parent = "/".join(parents[:depth])
            above = self.entries.get(parent)
            if above is not None and above.kind != "dir":
                raise ArchiveError(
                    f"member {entry.name!r} in {self.archive} lies below the "
                    f"{above.kind} {parent!r}"
                )
            self.dirs.add(parent)
        if entry.kind == "dir":
            self.dirs.add(entry.name)
        if entry.kind == "hardlink":
            linked = self.entries.get(entry.link)
            if linked is None or linked.kind != "file":
                raise ArchiveError(
                    f"hard link {entry.name!r} in {self.archive} points to {entry.link!r}, "
                    "which is not an earlier regular file of the archive"
                )
        self.size += entry.size
        self.quota.require(self.size, f"unpacking {self.archive} (at least {self.size} bytes)")
        self.entries[entry.name] = entry

    def check_links(self) -> None:
        """Check every symlink's target once all members are known."""
        for entry in self.entries.values():
            if entry.kind == "symlink":
                self._check_symlink(entry)

    def _check_symlink(self, entry: Entry) -> None:
        """Resolve a symlink lexically; refuse anything but the archive's own file or dir."""

        def refuse(why: str) -> ArchiveError:
            return ArchiveError(f"symlink {entry.name!r} -> {entry.link!r} in {self.archive} {why}")

        link = entry.link
        if not link or link.startswith("/") or "\\" in link or "\x00" in link:
            raise refuse("is empty or absolute")
        path = entry.name.split("/")[:-1]
        for part in link.split("/"):
            if part in ("", "."):
                continue
            current = "/".join(path)
            if current not in self.dirs:
                raise refuse(f"passes through {current!r}, which is not a directory of the archive")
            if part != "..":
                path.append(part)
            elif path:
                path.pop()
            else:
                raise refuse("points outside the archive")
        final = "/".join(path)
        found = self.entries.get(final)
        if final not in self.dirs and (found is None or found.kind not in ("file", "hardlink")):
            raise refuse("does not point to a file or directory of the archive")

    def write(self, target: Path, open_member: Callable[[Entry], IO[bytes]]) -> None:
        """Charge the quota, then create directories, files, hard links and symlinks."""
        self.quota.charge(self.size, f"unpacking {self.archive}")
        for directory in sorted(self.dirs - {""}):
            (target / directory).mkdir(parents=True, exist_ok=True)
        kinds = ("file", "hardlink", "symlink")
        for kind in kinds:
            for entry in (e for e in self.entries.values() if e.kind == kind):
                path = target / entry.name
                if kind == "file":
                    _copy(open_member(entry), path, entry)
                elif kind == "hardlink":
                    os.link(target / entry.link, path, follow_symlinks=False)
                else:
                    os.symlink(entry.link, path)


def _copy(stream: IO[bytes], path: Path, entry: Entry) -> None:
    """Write at most entry.size bytes of stream to a new file (never through a link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with stream:
        descriptor = os.open(path, flags, 0o755 if entry.executable else 0o644)
        with os.fdopen(descriptor, "wb") as out:
            left = entry.size
            while left and (chunk := stream.read(min(CHUNK_BYTES, left))):
                out.write(chunk)
                left -= len(chunk)


def _member_name(raw: str, archive: str, directory: bool) -> str:
    """The normalized name of a member, or ArchiveError when it could leave the target."""
    parts = relative_parts(raw)
    if parts is None or (not parts and not directory):
        raise ArchiveError(f"unsafe member in {archive}: {raw!r}")
    return "/".join(parts)


def _tar_entry(info: tarfile.TarInfo, archive: str) -> Entry:
    """An Entry for a tar member (regular file, directory, symlink or hard link)."""
    name = _member_name(info.name, archive, info.isdir())
    if info.isreg():
        return Entry(name, "file", info.size, executable=bool(info.mode & 0o111))
    if info.isdir():
        return Entry(name, "dir")
    if info.issym():
        return Entry(name, "symlink", link=info.linkname)
    if info.islnk():
        linked = relative_parts(info.linkname)
        if not linked:
            raise ArchiveError(
                f"hard link {name!r} in {archive} points outside it: {info.linkname!r}"
            )
        return Entry(name, "hardlink", link="/".join(linked))
    kind = (
        "character device"
        if info.ischr()
        else "block device"
        if info.isblk()
        else "FIFO"
        if info.isfifo()
        else f"type {info.type!r}"
    )
    raise ArchiveError(f"{kind} member refused in {archive}: {info.name!r}")


def _extract_tar(archive: Path, target: Path, quota: Quota) -> None:
    """Inventory the tar member by member, then write it."""
    inventory = Inventory(archive.name, quota)
    with tarfile.open(archive) as tar:
        infos: dict[str, tarfile.TarInfo] = {}
        for info in tar:  # lazily, header by header: the caps apply before the end
            entry = _tar_entry(info, archive.name)
            inventory.add(entry)
            infos[entry.name] = info
        inventory.check_links()

        def open_member(entry: Entry) -> IO[bytes]:
            stream = tar.extractfile(infos[entry.name])
            assert stream is not None  # regular files always have data
            return stream

        inventory.write(target, open_member)


def _zip_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: str) -> Entry:
    """An Entry for a zip member; the Unix mode in external_attr says what it is."""
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    directory = info.is_dir() or kind == stat.S_IFDIR
    name = _member_name(info.filename, archive, directory)
    if directory:
        return Entry(name, "dir")
    if kind == stat.S_IFLNK:
        if info.file_size > MAX_LINK_TARGET:
            raise ArchiveError(f"symlink {name!r} in {archive} has an oversized target")
        return Entry(name, "symlink", link=zf.read(info).decode("utf-8"))
    if kind in (0, stat.S_IFREG):  # 0: made on a system without Unix modes
        return Entry(name, "file", info.file_size, executable=bool(mode & 0o111))
    raise ArchiveError(f"special file member refused in {archive}: {info.filename!r}")


def _extract_zip(archive: Path, target: Path, quota: Quota) -> None:
    """Inventory the zip's central directory, then write it."""
    inventory = Inventory(archive.name, quota)
    with zipfile.ZipFile(archive) as zf:
        infos: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            entry = _zip_entry(zf, info, archive.name)
            inventory.add(entry)
            infos[entry.name] = info
        inventory.check_links()
        inventory.write(target, lambda entry: zf.open(infos[entry.name]))
