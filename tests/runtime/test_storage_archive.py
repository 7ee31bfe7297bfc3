"""Archive safety with real crafted archives: what a model archive may hold, every
known escape shape (CVE-2025-4517 and related tarfile-filter bypasses, zip slips),
devices, duplicates, member and size caps (bombs), and unpacking without tarfile's
``filter=`` (absent before Python 3.11.4).

Each refused archive leaves the target empty and nothing outside it."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from kubeserve_runtime.storage.archive import MAX_MEMBERS, ArchiveError, extract
from kubeserve_runtime.storage.quota import Quota, QuotaExceeded

ROOMY = 1 << 30


@dataclass(frozen=True)
class M:
    """One member to craft: a name, a tar type, data (files) or a link target."""

    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    link: str = ""
    mode: int = 0o644


def _tar(path: Path, members: list[M], mode: Literal["w:gz", "w"] = "w:gz") -> Path:
    """Write a tar archive (gzipped by default) holding exactly the given members."""
    with tarfile.open(path, mode) as tar:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = member.type
            info.linkname = member.link
            info.mode = member.mode
            info.size = len(member.data) if member.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(member.data) if info.size else None)
    return path


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path]:
    """(workspace, target): the target is an empty folder two levels down, so that
    anything escaping it would land in the workspace, where the test looks."""
    target = tmp_path / "volume" / "unpacked"
    target.mkdir(parents=True)
    return tmp_path, target


def _everything(root: Path) -> list[str]:
    """Every path below root (links not followed), sorted."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def _refused(box: tuple[Path, Path], archive: Path, match: str) -> None:
    """Unpacking fails with match, writes nothing in the target and nothing outside it."""
    workspace, target = box
    before = _everything(workspace)
    with pytest.raises(ArchiveError, match=match):
        extract(archive, target, Quota(ROOMY))
    assert list(target.iterdir()) == []
    assert _everything(workspace) == before


def test_a_model_tree_unpacks_with_safe_modes(box: tuple[Path, Path]) -> None:
    """./ prefixes, a '.' root entry, files before their directory, an executable and a
    setuid bit: everything lands, modes are 0644/0755 with no setuid."""
    workspace, target = box
    archive = _tar(
        workspace / "model.tar.gz",
        [
            M(".", tarfile.DIRTYPE, mode=0o755),
            M("./model/weights.bin", data=b"w" * 100),
            M("./model", tarfile.DIRTYPE, mode=0o777),
            M("./model/run.sh", data=b"#!/bin/sh\n", mode=0o4777),
            M("config.json", data=b"{}"),
        ],
    )
    quota = Quota(ROOMY)
    extract(archive, target, quota)
    assert _everything(target) == ["config.json", "model", "model/run.sh", "model/weights.bin"]
    assert (target / "model" / "weights.bin").read_bytes() == b"w" * 100
    assert stat.S_IMODE((target / "model" / "run.sh").stat().st_mode) & ~0o755 == 0
    assert (target / "model" / "run.sh").stat().st_mode & stat.S_IXUSR
    assert stat.S_IMODE((target / "config.json").stat().st_mode) & ~0o644 == 0
    assert quota.used == 112


def test_links_inside_the_archive_are_kept(box: tuple[Path, Path]) -> None:
    """Hugging Face cache style symlinks (../../blobs/x), a link to a directory, and a
    hard link to an earlier file are recreated."""
    workspace, target = box
    archive = _tar(
        workspace / "hf.tar",
        [
            M("blobs/abc", data=b"tensor"),
            M("snapshots/rev/model.safetensors", tarfile.SYMTYPE, link="../../blobs/abc"),
            M("latest", tarfile.SYMTYPE, link="snapshots/rev"),
            M("copy.safetensors", tarfile.LNKTYPE, link="blobs/abc"),
        ],
        "w",
    )
    extract(archive, target, Quota(ROOMY))
    assert (target / "latest" / "model.safetensors").read_bytes() == b"tensor"
    assert os.readlink(target / "latest") == "snapshots/rev"
    assert (target / "copy.safetensors").stat().st_ino == (target / "blobs" / "abc").stat().st_ino


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([M("../escape.txt", data=b"x")], r"unsafe member in evil\.tar\.gz: '\.\./escape\.txt'"),
        ([M("/tmp/abs.txt", data=b"x")], "unsafe member in evil.tar.gz: '/tmp/abs.txt'"),
        ([M("a/../../escape.txt", data=b"x")], "unsafe member"),
        ([M("link", tarfile.SYMTYPE, link="/etc/passwd")], "is empty or absolute"),
        ([M("sub/link", tarfile.SYMTYPE, link="../../outside")], "points outside the archive"),
        ([M("link", tarfile.SYMTYPE, link="")], "is empty or absolute"),
    ],
    ids=["dotdot", "absolute", "dotdot-inside", "symlink-absolute", "symlink-up", "symlink-empty"],
)
def test_names_and_symlinks_that_leave_are_refused(
    box: tuple[Path, Path], members: list[M], match: str
) -> None:
    """Traversal, absolute names (no silent stripping) and symlinks pointing out."""
    _refused(box, _tar(box[0] / "evil.tar.gz", members), match)


def test_symlink_then_file_through_it_is_refused(box: tuple[Path, Path]) -> None:
    """A link, even to a directory inside, is never a parent of a later member: writing
    'd/file' would otherwise go wherever 'd' points."""
    archive = _tar(
        box[0] / "through.tar.gz",
        [
            M("real", tarfile.DIRTYPE),
            M("d", tarfile.SYMTYPE, link="real"),
            M("d/file", data=b"x"),
        ],
    )
    _refused(box, archive, "member 'd/file' in through.tar.gz lies below the symlink 'd'")


def test_symlink_then_file_of_the_same_name_is_refused(box: tuple[Path, Path]) -> None:
    """A file written over an earlier symlink of the same name would follow it."""
    archive = _tar(
        box[0] / "same.tar.gz",
        [M("blob", data=b"x"), M("x", tarfile.SYMTYPE, link="blob"), M("x", data=b"pwned")],
    )
    _refused(box, archive, "duplicate member in same.tar.gz: 'x'")


def test_cve_2025_4517_symlink_chain_past_path_max_is_refused(box: tuple[Path, Path]) -> None:
    """CPython's own test of the bypass: directories sized so that expanding a chain of
    symlinks beside them outgrows PATH_MAX (where realpath stopped resolving), a deep
    link climbing back up, 'escape' through it, then a hard link to a file outside and
    a new file through 'escape'. The data filter of Python < 3.11.13 lets it overwrite
    volume/flag and create volume/newfile; here it is refused and both stay as they were."""
    workspace, target = box
    flag = target.parent / "flag"
    flag.write_text("original")
    steps = "abcdefghijklmnop"
    path_max = os.pathconf(target.parent, "PC_PATH_MAX")
    component = "d" * ((path_max - len(str(target.resolve())) - 1) // (len(steps) + 1))
    members: list[M] = []
    path = ""
    for step in steps:
        members.append(M(os.path.join(path, component), tarfile.DIRTYPE, mode=0o777))
        members.append(M(os.path.join(path, step), tarfile.SYMTYPE, link=component))
        path = os.path.join(path, component)
    deep = os.path.join(*steps, "l" * 254)
    members += [
        M(deep, tarfile.SYMTYPE, link=os.path.join(*[".."] * len(steps))),
        M("escape", tarfile.SYMTYPE, link=os.path.join(deep, "..")),
        M("flaglink", tarfile.LNKTYPE, link=os.path.join("escape", "flag")),
        M("flaglink", data=b"overwrite"),
        M("escape/newfile", data=b"new"),
    ]
    _refused(box, _tar(workspace / "cve.tar", members, "w"), "lies below the symlink 'a'")
    assert flag.read_text() == "original"
    assert not (target.parent / "newfile").exists()


@pytest.mark.parametrize(
    ("members", "match"),
    [
        (
            [
                M("a", tarfile.DIRTYPE),
                M("a/up", tarfile.SYMTYPE, link=".."),
                M("f", data=b"x"),
                M("x", tarfile.SYMTYPE, link="a/up/../f"),
            ],
            "passes through 'a/up', which is not a directory",
        ),
        (
            [
                M("f", data=b"x"),
                M("y", tarfile.SYMTYPE, link="f"),
                M("x", tarfile.SYMTYPE, link="y"),
            ],
            r"'x' -> 'y' in chain\.tar\.gz does not point to a file or directory",
        ),
        ([M("x", tarfile.SYMTYPE, link="missing")], "does not point to a file or directory"),
        ([M("x", tarfile.SYMTYPE, link="x")], "does not point to a file or directory"),
    ],
    ids=["dotdot-through-link", "link-to-link", "dangling", "self"],
)
def test_symlinks_through_or_to_links_are_refused(
    box: tuple[Path, Path], members: list[M], match: str
) -> None:
    """A target is resolved without following links, so it may not pass through or end
    at one (the lexical check would differ from the kernel's walk), nor at nothing (a
    later occupant could redirect it)."""
    _refused(box, _tar(box[0] / "chain.tar.gz", members), match)


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([M("h", tarfile.LNKTYPE, link="../../etc/passwd")], "points outside it"),
        ([M("h", tarfile.LNKTYPE, link="/etc/passwd")], "points outside it"),
        (
            [M("s", tarfile.SYMTYPE, link="."), M("h", tarfile.LNKTYPE, link="s/../../x")],
            "points outside it",
        ),
        (
            [
                M("f", data=b"x"),
                M("s", tarfile.SYMTYPE, link="f"),
                M("h", tarfile.LNKTYPE, link="s"),
            ],
            "not an earlier regular file",
        ),
        ([M("h", tarfile.LNKTYPE, link="later"), M("later", data=b"x")], "not an earlier"),
    ],
    ids=["relative-out", "absolute", "via-symlink", "to-symlink", "forward"],
)
def test_hard_links_out_are_refused(box: tuple[Path, Path], members: list[M], match: str) -> None:
    """A hard link may only name an earlier regular file of the archive."""
    _refused(box, _tar(box[0] / "hard.tar.gz", members), match)


@pytest.mark.parametrize(
    ("kind", "word"),
    [
        (tarfile.CHRTYPE, "character device"),
        (tarfile.BLKTYPE, "block device"),
        (tarfile.FIFOTYPE, "FIFO"),
    ],
)
def test_devices_and_fifos_are_refused(box: tuple[Path, Path], kind: bytes, word: str) -> None:
    """Special files are never created."""
    archive = _tar(box[0] / "dev.tar.gz", [M("ok", data=b"x"), M("dev", kind)])
    _refused(box, archive, f"{word} member refused in dev.tar.gz: 'dev'")


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([M("a", data=b"x"), M("a/b", data=b"y")], "lies below the file 'a'"),
        ([M("a/b", data=b"y"), M("a", data=b"x")], "file member 'a' in clash.tar.gz is also a"),
        ([M("a", data=b"x"), M("./a", data=b"y")], "duplicate member in clash.tar.gz: 'a'"),
    ],
    ids=["below-file", "file-over-dir", "duplicate"],
)
def test_clashing_names_are_refused(box: tuple[Path, Path], members: list[M], match: str) -> None:
    """One name, one member, of one kind."""
    _refused(box, _tar(box[0] / "clash.tar.gz", members), match)


def test_member_cap(box: tuple[Path, Path]) -> None:
    """More than MAX_MEMBERS members is refused (an inode bomb) before any is written."""
    members = [M(f"f{i}") for i in range(MAX_MEMBERS + 1)]
    _refused(box, _tar(box[0] / "many.tar", members, "w"), f"has more than {MAX_MEMBERS} members")


def test_gzip_bomb_stops_at_the_header(box: tuple[Path, Path]) -> None:
    """16 MiB of zeros in a ~16 KiB archive against a 1 MiB limit: refused from the
    header, nothing written; the message says why and names the variable."""
    workspace, target = box
    archive = _tar(workspace / "bomb.tar.gz", [M("zeros.bin", data=bytes(16 << 20))])
    assert archive.stat().st_size < 100_000
    quota = Quota(1 << 20)
    with pytest.raises(QuotaExceeded) as info:
        extract(archive, target, quota)
    assert str(info.value).startswith(
        f"unpacking bomb.tar.gz (at least {16 << 20} bytes) would take the model past its "
        f"size limit of {1 << 20} bytes (KUBESERVE_MAX_MODEL_BYTES"
    )
    assert list(target.iterdir()) == []
    assert quota.used == 0


def test_header_claiming_more_than_the_limit_is_refused_unread(box: tuple[Path, Path]) -> None:
    """A header announcing 1 TiB, with no data behind it: refused at the header."""
    workspace, target = box
    info = tarfile.TarInfo("huge.bin")
    info.size = 1 << 40
    archive = workspace / "huge.tar"
    archive.write_bytes(info.tobuf(tarfile.PAX_FORMAT) + bytes(1024))
    with pytest.raises(QuotaExceeded, match=r"unpacking huge\.tar \(at least 1099511627776"):
        extract(archive, target, Quota(ROOMY))
    assert list(target.iterdir()) == []


def test_the_archive_itself_counts_while_it_is_unpacked(box: tuple[Path, Path]) -> None:
    """Contents must fit beside what is already on the volume (the archive)."""
    workspace, target = box
    archive = _tar(workspace / "m.tar", [M("a", data=b"x" * 600)], "w")
    quota = Quota(1000)
    quota.charge(500, "m.tar")
    with pytest.raises(QuotaExceeded, match=r"^unpacking m\.tar \(at least 600 bytes\).*500 bytes"):
        extract(archive, target, quota)
    quota = Quota(1100)
    quota.charge(500, "m.tar")
    extract(archive, target, quota)
    assert quota.used == 1100


def _zip(path: Path, members: list[tuple[str, int, bytes]]) -> Path:
    """Write a zip whose members have the given names, Unix modes and data."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, mode, data in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = (mode & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def test_zip_model_with_inside_symlink_unpacks(box: tuple[Path, Path]) -> None:
    """Zips follow the same rules: files, directories and symlinks inside are kept."""
    workspace, target = box
    archive = _zip(
        workspace / "m.zip",
        [
            ("model/", stat.S_IFDIR | 0o755, b""),
            ("model/w.bin", stat.S_IFREG | 0o644, b"weights"),
            ("model/run", stat.S_IFREG | 0o755, b"#!"),
            ("current", stat.S_IFLNK | 0o777, b"model"),
            ("windows.txt", 0, b"no unix mode"),
        ],
    )
    extract(archive, target, Quota(ROOMY))
    assert (target / "current" / "w.bin").read_bytes() == b"weights"
    assert (target / "model" / "run").stat().st_mode & stat.S_IXUSR
    assert (target / "windows.txt").read_bytes() == b"no unix mode"


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([("ok", stat.S_IFREG | 0o644, b"x"), ("../escape", stat.S_IFREG, b"x")], "unsafe"),
        ([("/abs", stat.S_IFREG | 0o644, b"x")], "unsafe member in evil.zip: '/abs'"),
        ([("link", stat.S_IFLNK | 0o777, b"/etc/passwd")], "is empty or absolute"),
        ([("link", stat.S_IFLNK | 0o777, b"../../x")], "points outside the archive"),
        ([("link", stat.S_IFLNK | 0o777, b"a" * 5000)], "has an oversized target"),
        (
            [("d", stat.S_IFLNK | 0o777, b"."), ("d/f", stat.S_IFREG | 0o644, b"x")],
            "lies below the symlink 'd'",
        ),
        ([("fifo", stat.S_IFIFO | 0o644, b"")], "special file member refused in evil.zip"),
    ],
    ids=["dotdot", "absolute", "symlink-absolute", "symlink-up", "symlink-long", "through", "fifo"],
)
def test_zip_escapes_are_refused(
    box: tuple[Path, Path], members: list[tuple[str, int, bytes]], match: str
) -> None:
    """Zip slips, escaping or oversized symlinks, writes through links, special files."""
    _refused(box, _zip(box[0] / "evil.zip", members), match)


def test_zip_bomb_is_refused_before_writing(box: tuple[Path, Path]) -> None:
    """Declared sizes count: 16 MiB of zeros deflated to ~16 KiB, limit 1 MiB."""
    workspace, target = box
    archive = _zip(workspace / "bomb.zip", [("zeros", stat.S_IFREG | 0o644, bytes(16 << 20))])
    assert archive.stat().st_size < 100_000
    with pytest.raises(QuotaExceeded, match=r"unpacking bomb\.zip"):
        extract(archive, target, Quota(1 << 20))
    assert list(target.iterdir()) == []


def test_tar_extraction_needs_no_filter_support_fake_old_tarfile(
    box: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11.0-3.11.3 has no ``filter=`` (a TypeError). A FAKE of that: tarfile's
    own extraction methods raise as they would there; unpacking never calls them."""

    def no_filter(*args: object, **kwargs: object) -> None:
        raise TypeError("extractall() got an unexpected keyword argument 'filter'")

    monkeypatch.setattr(tarfile.TarFile, "extractall", no_filter)
    monkeypatch.setattr(tarfile.TarFile, "extract", no_filter)
    workspace, target = box
    archive = _tar(workspace / "m.tgz", [M("model.onnx", data=b"onnx")])
    extract(archive, target, Quota(ROOMY))
    assert (target / "model.onnx").read_bytes() == b"onnx"


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("model.tar.gz", b"not gzip at all"),
        ("model.zip", b"PK\x03\x04 truncated"),
        ("model.tar.gz", gzip.compress(b"x" * 700)[:-12]),
    ],
    ids=["garbage", "zip-garbage", "truncated-gzip"],
)
def test_corrupt_archive_is_a_clear_error(
    box: tuple[Path, Path], name: str, payload: bytes
) -> None:
    """Garbage or a cut-off archive names the archive."""
    archive = box[0] / name
    archive.write_bytes(payload)
    _refused(box, archive, f"cannot unpack {name.replace('.', '[.]')}")
