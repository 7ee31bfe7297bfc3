"""The kubeserve command line stays usable when an optional extra is not installed."""

from __future__ import annotations

import subprocess
import sys


def run_without(module: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run `kubeserve argv...` in a fresh interpreter where importing `module` fails."""
    code = (
        f"import sys; sys.modules[{module!r}] = None; "
        f"from kubeserve.cli import main; sys.exit(main({list(argv)!r}))"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_missing_demo_extra_only_affects_its_commands() -> None:
    """The operator image has no demo extra: `run` and `--version` work, `cluster` explains."""
    version = run_without("tenacity", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("kubeserve ")
    run_help = run_without("tenacity", "run", "--help")
    assert run_help.returncode == 0, run_help.stderr
    assert "--kubeconfig" in run_help.stdout
    cluster = run_without("tenacity", "cluster", "up")
    assert cluster.returncode == 2
    assert "pip install 'kubeserve[demo]'" in cluster.stderr
    assert "tenacity" in cluster.stderr
