"""Process lifecycle: refusing bad settings and models (SIGTERM drains: test_drain.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kubeserve_runtime.cli import SERVE_FLAGS, main
from kubeserve_runtime.testing import RuntimeProcess


def test_bad_settings_exit_2_with_reason(tmp_path: Path) -> None:
    """A missing model name or a malformed inputSchema is refused before serving."""
    base = [sys.executable, "-m", "kubeserve_runtime.cli", "serve", "--model-dir", str(tmp_path)]
    missing = subprocess.run(base, capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 2
    assert "model_name" in missing.stderr
    schema = subprocess.run(
        [*base, "--model-name", "m", "--input-schema", "{not json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert schema.returncode == 2
    assert "inputSchema is not valid JSON" in schema.stderr


def test_unloadable_model_exits_1_with_reason(tmp_path: Path) -> None:
    """A directory with no model logs why and exits 1 (the pod restarts, visibly)."""
    (tmp_path / "notes.txt.bak").write_text("nothing to serve")
    server = RuntimeProcess(tmp_path, "m", grpc=False).start(wait_ready=False)
    try:
        assert server.process is not None
        assert server.process.wait(60) == 1
        assert "cannot tell the model format" in server.log
    finally:
        server.close()


def test_env_is_overridden_by_flags(tmp_path: Path) -> None:
    """Settings come from KUBESERVE_* env; a flag of the same meaning wins."""
    from kubeserve_runtime.settings import RuntimeSettings

    env = {"KUBESERVE_MODEL_NAME": "from-env", "KUBESERVE_HTTP_PORT": "9000"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        settings = RuntimeSettings()
        assert (settings.model_name, settings.http_port) == ("from-env", 9000)
        assert RuntimeSettings(http_port=9100).http_port == 9100


def test_freeze_heap_hides_long_lived_objects_from_the_collector() -> None:
    """After loading, every object alive is frozen: full collections no longer scan it."""
    import gc

    from kubeserve_runtime.server import freeze_heap

    survivor = [object() for _ in range(1000)]
    try:
        freeze_heap()
        assert gc.get_freeze_count() >= len(survivor)
    finally:
        gc.unfreeze()


def test_serve_help_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    """`serve --help` names each setting's env variable and default."""
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    for expected in (
        "(KUBESERVE_MAX_REQUEST_BYTES; default: 16777216)",
        "(KUBESERVE_SHUTDOWN_DELAY_SECONDS; default: 5.0)",
        "(KUBESERVE_REQUEST_READ_TIMEOUT_SECONDS; default: 30.0)",
        "(KUBESERVE_MODEL_NAME; required)",
        "(KUBESERVE_MODEL_VERSION; default: unset)",
    ):
        assert expected in " ".join(text.split()), expected


def test_every_setting_has_a_serve_flag() -> None:
    """Each RuntimeSettings field can be set from the command line, under its own name."""
    from kubeserve_runtime.settings import RuntimeSettings

    flags = {dest: flag for flag, dest, _ in SERVE_FLAGS}
    assert set(flags) == set(RuntimeSettings.model_fields)
    for dest, flag in flags.items():
        assert flag in (f"--{dest.replace('_', '-')}", "--format"), flag
