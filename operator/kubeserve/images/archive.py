"""OCI image-layout archives written with the standard library (no Docker, no registry).

Limits: layers are uncompressed tars (``application/vnd.oci.image.layer.v1.tar``), one
image per archive, one platform (this machine's). Uncompressed because the archive only
travels from this machine's cache into this machine's containerd; gzip would cost tens
of seconds per build on two cores and save nothing that matters.

Reproducible: entries are sorted, owner names are empty, the JSON documents are written
with sorted keys, and every mtime is :data:`EPOCH` unless the layer keeps its own, so the
same folders and config give the same digest. Owners are numeric and kept only when
asked (``Layer.keep_owner``): a rootfs built as root keeps its uid/gid 1000 files; a
folder built by the current user becomes root-owned, like ``COPY`` without ``--chown``.

A layer holding Python bytecode must keep its mtimes (``Layer.keep_mtime``): a
timestamp-based ``.pyc`` records its source's mtime, and a source whose mtime was reset
makes every such ``.pyc`` stale, so a read-only container would recompile each module on
every start. Such folders are built once and cached, so they stay byte-equal per folder.

An overlayfs upper folder can be a layer as is: its whiteouts (character devices 0/0)
become OCI ``.wh.<name>`` entries and an opaque folder (``trusted.overlay.opaque=y``) gets
``.wh..wh..opq``, which is how the deps and app layers record what they remove.

``containerd`` names an imported image after the index annotation
``io.containerd.image.name``; ``org.opencontainers.image.ref.name`` carries the tag, as
BuildKit writes it, so ``skopeo`` and other OCI tools can select the image by tag.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

EPOCH = 0
"""The mtime of every entry: a fixed value, so rebuilding the same folders is byte-equal."""

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONTAINERD_NAME = "io.containerd.image.name"
REF_NAME = "org.opencontainers.image.ref.name"
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
CHUNK = 1 << 20

ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class Layer:
    """A folder that becomes one layer: its contents land at the image root."""

    folder: Path
    keep_owner: bool = False
    keep_mtime: bool = False


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an OCI image config (what a Dockerfile's final stage sets)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = ""
    ports: tuple[str, ...] = ()
    """Exposed ports as ``8080`` or ``8080/tcp``."""

    def document(self) -> dict[str, Any]:
        """Return the ``config`` object of the OCI image config (empty fields left out)."""
        doc: dict[str, Any] = {}
        if self.entrypoint:
            doc["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            doc["Cmd"] = list(self.cmd)
        if self.env:
            doc["Env"] = [f"{key}={value}" for key, value in self.env.items()]
        if self.user:
            doc["User"] = self.user
        if self.workdir:
            doc["WorkingDir"] = self.workdir
        if self.ports:
            doc["ExposedPorts"] = {_port(p): {} for p in self.ports}
        return doc


def _port(port: str) -> str:
    """Return ``8080/tcp`` for ``8080``; a given protocol is kept."""
    return port if "/" in port else f"{port}/tcp"


@dataclass(frozen=True)
class Blob:
    """A content-addressed file of the layout."""

    digest: str
    size: int
    path: Path


@dataclass(frozen=True)
class Written:
    """What :func:`write_archive` produced: the manifest digest names the image."""

    path: Path
    reference: str
    manifest_digest: str
    diff_ids: tuple[str, ...]


def architecture() -> str:
    """Return this machine's OCI architecture name (``amd64``, ``arm64``)."""
    machine = platform.machine()
    return ARCHITECTURES.get(machine, machine)


def _entries(root: Path) -> Iterator[Path]:
    """Yield every path under ``root`` depth first in name order, each folder before its
    contents (symlinks to folders are not followed)."""
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        yield Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            yield from _entries(Path(entry.path))


def _is_whiteout(info: os.stat_result) -> bool:
    """Return whether a file is an overlayfs whiteout (character device 0/0)."""
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    """Return whether an overlayfs upper folder hides everything below it."""
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _normalised(
    info: tarfile.TarInfo, keep_owner: bool, keep_mtime: bool = False
) -> tarfile.TarInfo:
    """Fix the fields that would make two builds of the same folder differ."""
    if not keep_mtime:
        info.mtime = EPOCH
    info.uname = info.gname = ""
    if not keep_owner:
        info.uid = info.gid = 0
    return info


def write_layer(layer: Layer, out: BinaryIO) -> None:
    """Write ``layer.folder`` as an uncompressed, reproducible tar to ``out``."""
    root = layer.folder
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in _entries(root):
            name = path.relative_to(root).as_posix()
            info = path.lstat()
            if _is_whiteout(info):
                parent, _, base = name.rpartition("/")
                marker = tarfile.TarInfo(
                    f"{parent}/{WHITEOUT}{base}" if parent else WHITEOUT + base
                )
                tar.addfile(_normalised(marker, False))
                continue
            entry = _normalised(
                tar.gettarinfo(str(path), arcname=name), layer.keep_owner, layer.keep_mtime
            )
            if entry.isreg():
                with path.open("rb") as handle:
                    tar.addfile(entry, handle)
            else:
                tar.addfile(entry)
            if entry.isdir() and _is_opaque(path):
                tar.addfile(_normalised(tarfile.TarInfo(f"{name}/{OPAQUE}"), False))


class _Hashing(io.RawIOBase):
    """A write-only file that hashes and counts what passes through to another file."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self.target.write(view)
        self.size += len(view)
        return len(view)


def _blob_from_layer(layer: Layer, target: Path) -> Blob:
    """Write one layer tar to ``target`` and return it as a blob."""
    with target.open("wb") as handle:
        hashing = _Hashing(handle)
        write_layer(layer, hashing)  # type: ignore[arg-type]
    return Blob(f"sha256:{hashing.sha.hexdigest()}", hashing.size, target)


def _blob_from_json(document: dict[str, Any], scratch: Path, name: str) -> Blob:
    """Write a canonical JSON document into ``scratch`` and return it as a blob."""
    data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    target = scratch / name
    target.write_bytes(data)
    return Blob(f"sha256:{hashlib.sha256(data).hexdigest()}", len(data), target)


def split_reference(reference: str) -> tuple[str, str]:
    """Return (repository, tag) of ``repo[:port]/path:tag``; no tag means ``latest``."""
    repository, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        return reference, "latest"
    return repository, tag


def _add_file(tar: tarfile.TarFile, name: str, source: Path) -> None:
    """Add one file to the outer archive with normalised metadata."""
    info = _normalised(tar.gettarinfo(str(source), arcname=name), False)
    info.mode = 0o644
    with source.open("rb") as handle:
        tar.addfile(info, handle)


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    """Add one folder entry to the outer archive."""
    info = _normalised(tarfile.TarInfo(name), False)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def write_archive(
    path: Path, reference: str, layers: Sequence[Layer], config: ImageConfig
) -> Written:
    """Write an OCI image-layout tar of ``layers`` (bottom first) named ``reference``.

    The archive is written next to ``path`` and renamed into place, so a reader never
    sees half an archive.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".oci-") as tmp:
        scratch = Path(tmp) / "blobs"
        scratch.mkdir()
        layer_blobs = [
            _blob_from_layer(layer, scratch / f"layer-{number}.tar")
            for number, layer in enumerate(layers)
        ]
        diff_ids = tuple(blob.digest for blob in layer_blobs)
        image = {
            "architecture": architecture(),
            "os": "linux",
            "config": config.document(),
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        }
        config_blob = _blob_from_json(image, scratch, "config.json")
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": _descriptor(CONFIG_MEDIA_TYPE, config_blob),
            "layers": [_descriptor(LAYER_MEDIA_TYPE, blob) for blob in layer_blobs],
        }
        manifest_blob = _blob_from_json(manifest, scratch, "manifest.json")
        _, tag = split_reference(reference)
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [
                {
                    **_descriptor(MANIFEST_MEDIA_TYPE, manifest_blob),
                    "annotations": {CONTAINERD_NAME: reference, REF_NAME: tag},
                }
            ],
        }
        index_file = _blob_from_json(index, scratch, "index.json").path
        layout_file = _blob_from_json({"imageLayoutVersion": "1.0.0"}, scratch, "oci-layout").path
        partial = Path(tmp) / "image.tar"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_file(tar, "oci-layout", layout_file)
            _add_file(tar, "index.json", index_file)
            _add_dir(tar, "blobs")
            _add_dir(tar, "blobs/sha256")
            unique = {b.digest: b for b in [*layer_blobs, config_blob, manifest_blob]}
            for digest in sorted(unique):
                _add_file(tar, f"blobs/sha256/{digest.split(':', 1)[1]}", unique[digest].path)
        shutil.move(partial, path)
    return Written(path, reference, manifest_blob.digest, diff_ids)


def _descriptor(media_type: str, blob: Blob) -> dict[str, Any]:
    """Return an OCI content descriptor for a blob."""
    return {"mediaType": media_type, "digest": blob.digest, "size": blob.size}


def read_index_name(path: Path) -> str:
    """Return the ``io.containerd.image.name`` an archive's index gives its one image."""
    with tarfile.open(path) as tar:
        handle = tar.extractfile("index.json")
        if handle is None:
            raise ValueError(f"{path}: no index.json")
        (entry,) = json.loads(handle.read())["manifests"]
    name: str = entry.get("annotations", {}).get(CONTAINERD_NAME, "")
    if not name:
        raise ValueError(f"{path}: the index names no image ({CONTAINERD_NAME})")
    return name


@dataclass(frozen=True)
class Contents:
    """An archive read back: what an importer would see (used by tests and ``image``)."""

    reference: str
    tag: str
    config: dict[str, Any]
    layers: tuple[tuple[tarfile.TarInfo, ...], ...]


def read_archive(path: Path) -> Contents:
    """Read an archive written by :func:`write_archive`, checking every blob's digest.

    Layers are streamed (never held in memory whole): a runtime layer is hundreds of MB.
    """
    with tarfile.open(path) as tar:

        def member(digest: str) -> IO[bytes]:
            handle = tar.extractfile(f"blobs/sha256/{digest.split(':', 1)[1]}")
            if handle is None:
                raise ValueError(f"{path}: blob {digest} is missing")
            return handle

        def verified(digest: str, keep: bool = True) -> bytes:
            sha, data = hashlib.sha256(), bytearray()
            handle = member(digest)
            while chunk := handle.read(CHUNK):
                sha.update(chunk)
                if keep:
                    data.extend(chunk)
            if f"sha256:{sha.hexdigest()}" != digest:
                raise ValueError(f"{path}: blob {digest} has digest sha256:{sha.hexdigest()}")
            return bytes(data)

        index_member = tar.extractfile("index.json")
        if index_member is None:
            raise ValueError(f"{path}: no index.json")
        (entry,) = json.loads(index_member.read())["manifests"]
        manifest = json.loads(verified(entry["digest"]))
        config = json.loads(verified(manifest["config"]["digest"]))
        layers = []
        for layer in manifest["layers"]:
            verified(layer["digest"], keep=False)
            with tarfile.open(fileobj=member(layer["digest"]), mode="r|") as stream:
                layers.append(tuple(stream))
    annotations = entry.get("annotations", {})
    return Contents(
        annotations.get(CONTAINERD_NAME, ""), annotations.get(REF_NAME, ""), config, tuple(layers)
    )
