"""``kubeserve-runtime download`` as a real process: exit codes and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _download(*args: str, limit: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the download subcommand (with KUBESERVE_MAX_MODEL_BYTES=limit when given)."""
    env = {k: v for k, v in os.environ.items() if k != "KUBESERVE_MAX_MODEL_BYTES"}
    if limit is not None:
        env["KUBESERVE_MAX_MODEL_BYTES"] = limit
    return subprocess.run(
        [sys.executable, "-m", "kubeserve_runtime.cli", "download", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_copies_a_file_uri(tmp_path: Path) -> None:
    """Success exits 0 and the model is in DIR."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.onnx").write_bytes(b"onnx")
    result = _download(f"file://{src}", str(tmp_path / "models"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "models" / "model.onnx").read_bytes() == b"onnx"


def test_unknown_scheme_is_one_line_naming_uri_and_cause(tmp_path: Path) -> None:
    """An unknown scheme exits 1 with a single line on stderr."""
    result = _download("ftp://example/model.onnx", str(tmp_path / "models"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "kubeserve-runtime download: error: ftp://example/model.onnx: unknown URI scheme 'ftp'; "
        "supported: s3://, gs://, https://, http://, pvc://, file://"
    ]
    assert not (tmp_path / "models").exists()


def test_pvc_root_flag(tmp_path: Path) -> None:
    """--pvc-root overrides where pvc:// is looked up; a miss is one line."""
    (tmp_path / "pvc" / "claim" / "m").mkdir(parents=True)
    (tmp_path / "pvc" / "claim" / "m" / "w.bin").write_bytes(b"w")
    ok = _download("--pvc-root", str(tmp_path / "pvc"), "pvc://claim/m", str(tmp_path / "out"))
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "out" / "w.bin").read_bytes() == b"w"
    miss = _download("--pvc-root", str(tmp_path / "pvc"), "pvc://other/m", str(tmp_path / "o2"))
    assert miss.returncode == 1
    assert len(miss.stderr.splitlines()) == 1
    assert "pvc://other/m: no such file or directory" in miss.stderr


def test_model_size_limit_from_the_environment(tmp_path: Path) -> None:
    """KUBESERVE_MAX_MODEL_BYTES (rendered by the operator) caps the model: over it, one
    line and exit 1 with no DIR left; a value that is not integer bytes is one line too."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.onnx").write_bytes(bytes(2000))
    over = _download(f"file://{src}", str(tmp_path / "models"), limit="1000")
    assert over.returncode == 1
    assert over.stderr.splitlines() == [
        f"kubeserve-runtime download: error: file://{src}: model.onnx (2000 bytes) would take "
        "the model past its size limit of 1000 bytes (KUBESERVE_MAX_MODEL_BYTES; 0 bytes "
        "already on the volume)"
    ]
    assert not (tmp_path / "models").exists()
    fits = _download(f"file://{src}", str(tmp_path / "models"), limit="2000")
    assert fits.returncode == 0, fits.stderr
    bad = _download(f"file://{src}", str(tmp_path / "other"), limit="2Gi")
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [
        "kubeserve-runtime download: error: KUBESERVE_MAX_MODEL_BYTES must be a positive "
        "integer (bytes), got '2Gi'"
    ]
    assert not (tmp_path / "other").exists()
