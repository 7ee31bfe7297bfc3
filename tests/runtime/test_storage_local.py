"""file:// and pvc:// downloads, checksums and the no-partial-model guarantee."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kubeserve_runtime.storage import DownloadOptions, StorageError, download


def _model_dir(root: Path) -> Path:
    """A small model directory with a nested file and a correct SHA256SUMS."""
    src = root / "src"
    (src / "assets").mkdir(parents=True)
    (src / "model.joblib").write_bytes(b"\x80\x04weights")
    (src / "assets" / "vocab.txt").write_text("a\nb\n")
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(src).as_posix()}"
        for p in sorted(src.rglob("*"))
        if p.is_file()
    ]
    (src / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return src


def test_file_directory_is_copied_and_verified(tmp_path: Path) -> None:
    """A directory's entries land in DEST as real copies; staging leaves no trace."""
    src = _model_dir(tmp_path)
    dest = tmp_path / "models"
    placed = download(f"file://{src}", dest, DownloadOptions())
    assert sorted(p.name for p in placed) == ["SHA256SUMS", "assets", "model.joblib"]
    assert (dest / "assets" / "vocab.txt").read_text() == "a\nb\n"
    assert not (dest / "model.joblib").is_symlink()
    assert sorted(p.name for p in dest.iterdir()) == ["SHA256SUMS", "assets", "model.joblib"]


def test_file_link_mode_symlinks(tmp_path: Path) -> None:
    """--link places symlinks to the source instead of copies."""
    src = _model_dir(tmp_path)
    dest = tmp_path / "models"
    download(f"file://{src}", dest, DownloadOptions(link=True))
    assert (dest / "model.joblib").is_symlink()
    assert (dest / "model.joblib").resolve() == (src / "model.joblib").resolve()


def test_single_file_with_matching_fragment(tmp_path: Path) -> None:
    """A #sha256= fragment that matches passes; the file keeps its name."""
    src = _model_dir(tmp_path) / "model.joblib"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "models"
    download(f"file://{src}#sha256={digest}", dest, DownloadOptions())
    assert (dest / "model.joblib").read_bytes() == src.read_bytes()


def test_fragment_mismatch_leaves_no_partial_model(tmp_path: Path) -> None:
    """A wrong digest is a clear error and DEST (created by the run) is removed again."""
    src = _model_dir(tmp_path) / "model.joblib"
    dest = tmp_path / "models"
    uri = f"file://{src}#sha256={'0' * 64}"
    with pytest.raises(StorageError, match=r"checksum mismatch for model\.joblib") as info:
        download(uri, dest, DownloadOptions())
    assert info.value.uri == uri
    assert not dest.exists()


def test_manifest_mismatch_keeps_existing_dest_untouched(tmp_path: Path) -> None:
    """A tampered file fails SHA256SUMS; a pre-existing DEST keeps exactly what it had."""
    src = _model_dir(tmp_path)
    (src / "assets" / "vocab.txt").write_text("tampered\n")
    dest = tmp_path / "models"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(StorageError, match=r"checksum mismatch for assets/vocab\.txt"):
        download(f"file://{src}", dest, DownloadOptions())
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_manifest_listing_a_missing_file_fails(tmp_path: Path) -> None:
    """Every file SHA256SUMS names must be present."""
    src = _model_dir(tmp_path)
    (src / "model.joblib").unlink()
    with pytest.raises(StorageError, match=r"lists 'model\.joblib'"):
        download(f"file://{src}", tmp_path / "models", DownloadOptions())


def test_fragment_on_a_directory_is_refused(tmp_path: Path) -> None:
    """#sha256= only makes sense for one file."""
    src = _model_dir(tmp_path)
    with pytest.raises(StorageError, match="needs a URI naming one file"):
        download(f"file://{src}#sha256={'0' * 64}", tmp_path / "models", DownloadOptions())


def test_pvc_maps_to_the_mount_root(tmp_path: Path) -> None:
    """pvc://NAME/path reads <pvc root>/NAME/path."""
    root = tmp_path / "pvc"
    model = root / "claim-a" / "iris" / "v1"
    model.mkdir(parents=True)
    (model / "model.onnx").write_bytes(b"onnx")
    dest = tmp_path / "models"
    download("pvc://claim-a/iris/v1", dest, DownloadOptions(pvc_root=root))
    assert (dest / "model.onnx").read_bytes() == b"onnx"


def test_missing_pvc_path_names_the_mount(tmp_path: Path) -> None:
    """A missing PVC path says where it looked and hints at the mount."""
    root = tmp_path / "pvc"
    with pytest.raises(StorageError) as info:
        download("pvc://claim-b/iris", tmp_path / "models", DownloadOptions(pvc_root=root))
    message = str(info.value)
    assert message.startswith("pvc://claim-b/iris: no such file or directory")
    assert "is PVC 'claim-b' mounted" in message
    assert not (tmp_path / "models").exists()


def test_existing_entries_of_the_same_name_are_replaced(tmp_path: Path) -> None:
    """A re-run (init container restart) replaces the previous download."""
    src = _model_dir(tmp_path)
    dest = tmp_path / "models"
    (dest / "assets").mkdir(parents=True)
    (dest / "assets" / "stale.txt").write_text("old")
    download(f"file://{src}", dest, DownloadOptions())
    assert sorted(p.name for p in (dest / "assets").iterdir()) == ["vocab.txt"]


def test_copies_count_against_the_limit_and_links_do_not(tmp_path: Path) -> None:
    """A copied tree over the limit is refused and removed; linking it costs nothing."""
    src = _model_dir(tmp_path)
    (src / "big.bin").write_bytes(bytes(5000))
    dest = tmp_path / "models"
    with pytest.raises(StorageError) as info:
        download(f"file://{src}", dest, DownloadOptions(max_bytes=4096))
    assert "big.bin (5000 bytes) would take the model past its size limit of 4096" in str(
        info.value
    )
    assert not dest.exists()
    download(f"file://{src}", dest, DownloadOptions(link=True, max_bytes=4096))
    assert (dest / "big.bin").is_symlink()
