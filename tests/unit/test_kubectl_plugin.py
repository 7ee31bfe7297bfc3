"""`kubectl kubeserve ...` works through the real kubectl, TAB completion included.

The console scripts are made from pyproject's [project.scripts] exactly as pip makes
them (a Python file calling the named function), so the test checks the declared entry
points whether or not this checkout's venv was reinstalled since they changed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from kubeserve import __version__
from kubeserve.completion import EXECUTABLES, completion_line, prog_name

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.fixture
def plugin_path(tmp_path: Path) -> dict[str, str]:
    """Environment whose PATH holds our console scripts, as pip would install them."""
    for name, target in SCRIPTS.items():
        module, function = target.split(":")
        script = tmp_path / name
        script.write_text(
            f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\n"
            f"sys.exit({function}())\n"
        )
        script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return env | {"PATH": f"{tmp_path}:{os.environ['PATH']}", "HOME": str(tmp_path)}


def kubectl(binary: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the cached kubectl."""
    return subprocess.run(
        [str(binary), *args], env=env, capture_output=True, text=True, check=False, timeout=60
    )


def test_console_scripts_are_declared() -> None:
    assert SCRIPTS["kubectl-kubeserve"] == SCRIPTS["kubeserve"] == "kubeserve.cli:main"
    assert SCRIPTS["kubectl_complete-kubeserve"] == "kubeserve.completion:kubectl_complete"
    assert set(EXECUTABLES) <= set(SCRIPTS)


def test_kubectl_runs_the_plugin(kubectl_binary: Path, plugin_path: dict[str, str]) -> None:
    listed = kubectl(kubectl_binary, plugin_path, "plugin", "list")
    assert "kubectl-kubeserve" in listed.stdout, listed.stdout + listed.stderr
    version = kubectl(kubectl_binary, plugin_path, "kubeserve", "version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"kubeserve {__version__}"
    usage = kubectl(kubectl_binary, plugin_path, "kubeserve", "--help")
    assert usage.stdout.startswith("usage: kubectl kubeserve ")
    assert "convert" in usage.stdout


def test_kubectl_completes_the_plugin(kubectl_binary: Path, plugin_path: dict[str, str]) -> None:
    """kubectl's own completion (`__complete`, what its shell script calls) asks ours."""
    commands = kubectl(kubectl_binary, plugin_path, "__complete", "kubeserve", "con")
    assert commands.stdout.splitlines()[0] == "convert", commands.stdout + commands.stderr
    options = kubectl(kubectl_binary, plugin_path, "__complete", "kubeserve", "convert", "--")
    assert {"--filename", "--output"} <= set(options.stdout.splitlines())


def test_completion_scripts_name_both_executables() -> None:
    for shell in ("bash", "zsh"):
        result = subprocess.run(
            [sys.executable, "-m", "kubeserve.cli", "completion", shell],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "kubectl-kubeserve" in result.stdout
        assert "_ARGCOMPLETE" in result.stdout


def test_prog_name_and_completion_line() -> None:
    assert prog_name("/usr/local/bin/kubectl-kubeserve") == "kubectl kubeserve"
    assert prog_name("kubeserve") == "kubeserve"
    assert completion_line(["convert", "-f", "my file.yaml", "--o"]) == (
        "kubeserve convert -f 'my file.yaml' --o"
    )
    assert completion_line([]) == "kubeserve "
