"""The OCI archive writer: layout, config, owners, whiteouts and byte-for-byte reproducibility."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from kubeserve.images import archive

CONFIG = archive.ImageConfig(
    entrypoint=("kubeserve-runtime",),
    cmd=("serve", "--model-dir", "/mnt/models"),
    env={"PATH": "/opt/kubeserve/bin:/usr/bin", "HOME": "/tmp"},
    user="1000:1000",
    workdir="/tmp",
    ports=("8080", "8081/udp"),
)


def _folder(root: Path) -> Path:
    """A small rootfs: nested files, an executable, a symlink and a hard link."""
    (root / "opt" / "app").mkdir(parents=True)
    (root / "opt" / "app" / "main.py").write_text("print('hi')\n")
    tool = root / "opt" / "app" / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (root / "opt" / "link").symlink_to("app/main.py")
    os.link(root / "opt" / "app" / "main.py", root / "opt" / "hard")
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_layout_config_and_names(tmp_path: Path) -> None:
    """The archive holds an OCI layout whose index names the image for containerd and by tag."""
    written = archive.write_archive(
        tmp_path / "out.tar",
        "ghcr.io/kubeserve/runtime:0.1.0",
        [archive.Layer(_folder(tmp_path / "rootfs"))],
        CONFIG,
    )
    contents = archive.read_archive(written.path)
    assert contents.reference == "ghcr.io/kubeserve/runtime:0.1.0"
    assert contents.tag == "0.1.0"
    assert archive.read_index_name(written.path) == "ghcr.io/kubeserve/runtime:0.1.0"
    assert contents.config["config"] == {
        "Entrypoint": ["kubeserve-runtime"],
        "Cmd": ["serve", "--model-dir", "/mnt/models"],
        "Env": ["PATH=/opt/kubeserve/bin:/usr/bin", "HOME=/tmp"],
        "User": "1000:1000",
        "WorkingDir": "/tmp",
        "ExposedPorts": {"8080/tcp": {}, "8081/udp": {}},
    }
    assert contents.config["rootfs"]["diff_ids"] == list(written.diff_ids)
    assert contents.config["os"] == "linux"
    members = {m.name: m for m in contents.layers[0]}
    assert sorted(members) == [
        "opt",
        "opt/app",
        "opt/app/main.py",
        "opt/app/tool",
        "opt/hard",
        "opt/link",
    ]
    assert members["opt/app/tool"].mode & 0o111
    assert members["opt/link"].issym()
    assert members["opt/link"].linkname == "app/main.py"
    assert members["opt/hard"].islnk()
    assert members["opt/hard"].linkname == "opt/app/main.py"
    assert {m.mtime for m in members.values()} == {archive.EPOCH}
    with tarfile.open(written.path) as tar:
        assert json.loads(tar.extractfile("oci-layout").read()) == {  # type: ignore[union-attr]
            "imageLayoutVersion": "1.0.0"
        }


def test_same_inputs_same_bytes(tmp_path: Path) -> None:
    """Two writes of equal folders (made at different times, in different places) are equal."""
    one = archive.write_archive(
        tmp_path / "a.tar", "x.local/a:1", [archive.Layer(_folder(tmp_path / "a"))], CONFIG
    )
    os.utime(tmp_path / "a" / "opt" / "app" / "main.py", (1, 1))
    two = archive.write_archive(
        tmp_path / "b.tar", "x.local/a:1", [archive.Layer(_folder(tmp_path / "b"))], CONFIG
    )
    assert one.manifest_digest == two.manifest_digest
    assert _sha(one.path) == _sha(two.path)
    (tmp_path / "b" / "opt" / "app" / "main.py").write_text("print('changed')\n")
    three = archive.write_archive(
        tmp_path / "c.tar", "x.local/a:1", [archive.Layer(tmp_path / "b")], CONFIG
    )
    assert three.diff_ids != two.diff_ids


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_owners_kept_only_when_asked(tmp_path: Path) -> None:
    """keep_owner keeps numeric uid/gid (names never); otherwise everything is root's."""
    root = _folder(tmp_path / "rootfs")
    os.chown(root / "opt" / "app", 1000, 1000)
    for keep, expected in ((True, (1000, 1000)), (False, (0, 0))):
        written = archive.write_archive(
            tmp_path / f"{keep}.tar", "x.local/a:1", [archive.Layer(root, keep_owner=keep)], CONFIG
        )
        members = {m.name: m for m in archive.read_archive(written.path).layers[0]}
        assert (members["opt/app"].uid, members["opt/app"].gid) == expected
        assert members["opt/app"].uname == ""


@pytest.mark.skipif(
    os.geteuid() != 0, reason="overlayfs whiteouts (mknod, trusted xattrs) need root"
)
def test_overlay_whiteouts_become_oci_whiteouts(tmp_path: Path) -> None:
    """A 0/0 character device is a deletion and an opaque folder hides what is below."""
    root = tmp_path / "upper"
    (root / "etc" / "gone").parent.mkdir(parents=True)
    os.mknod(root / "etc" / "gone", 0o600 | 0o020000, os.makedev(0, 0))
    (root / "var").mkdir()
    os.setxattr(root / "var", "trusted.overlay.opaque", b"y")
    written = archive.write_archive(
        tmp_path / "o.tar", "x.local/o:1", [archive.Layer(root)], archive.ImageConfig()
    )
    names = [m.name for m in archive.read_archive(written.path).layers[0]]
    assert names == ["etc", "etc/.wh.gone", "var", "var/.wh..wh..opq"]


def test_corrupt_blob_is_refused(tmp_path: Path) -> None:
    """The reader checks every blob against its digest."""
    written = archive.write_archive(
        tmp_path / "a.tar", "x.local/a:1", [archive.Layer(_folder(tmp_path / "a"))], CONFIG
    )
    layer = written.diff_ids[0].split(":")[1]
    broken = tmp_path / "broken.tar"
    with tarfile.open(written.path) as src, tarfile.open(broken, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member) if member.isfile() else None
            if member.name.endswith(layer) and data is not None:
                body = bytearray(data.read())
                body[-1] ^= 1
                import io

                dst.addfile(member, io.BytesIO(bytes(body)))
            else:
                dst.addfile(member, data)
    with pytest.raises(ValueError, match="has digest"):
        archive.read_archive(broken)


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("kubeserve.local/pause:3.10", ("kubeserve.local/pause", "3.10")),
        ("localhost:5000/a/b", ("localhost:5000/a/b", "latest")),
        ("localhost:5000/a/b:v1", ("localhost:5000/a/b", "v1")),
        ("busybox", ("busybox", "latest")),
    ],
)
def test_split_reference(reference: str, expected: tuple[str, str]) -> None:
    """The tag is what follows the last colon, unless that colon is a registry port."""
    assert archive.split_reference(reference) == expected


def test_keep_mtime(tmp_path: Path) -> None:
    """A layer may keep its mtimes (valid .pyc files need them); the default resets them."""
    root = _folder(tmp_path / "rootfs")
    os.utime(root / "opt" / "app" / "main.py", (1_700_000_000, 1_700_000_000))
    kept = archive.write_archive(
        tmp_path / "k.tar", "x.local/a:1", [archive.Layer(root, keep_mtime=True)], CONFIG
    )
    members = {m.name: m for m in archive.read_archive(kept.path).layers[0]}
    assert members["opt/app/main.py"].mtime == 1_700_000_000
