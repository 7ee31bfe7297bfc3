"""The repository layout rules of DESIGN.md that a careless edit could break."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_operator_folder_is_not_a_package() -> None:
    """operator/__init__.py would shadow the stdlib module `operator`."""
    assert not (ROOT / "operator" / "__init__.py").exists()
    stdlib_operator = importlib.import_module("operator")
    assert stdlib_operator.add(2, 3) == 5
    assert "site-packages" not in str(getattr(stdlib_operator, "__file__", ""))
    assert not str(getattr(stdlib_operator, "__file__", "")).startswith(str(ROOT / "operator"))


def test_both_packages_import_from_their_folders() -> None:
    """kubeserve comes from operator/, kubeserve_runtime from serving_image/."""
    import kubeserve
    import kubeserve_runtime

    assert Path(kubeserve.__file__).parent == ROOT / "operator" / "kubeserve"
    assert Path(kubeserve_runtime.__file__).parent == ROOT / "serving_image" / "kubeserve_runtime"


def test_runtime_never_imports_kopf_or_kubernetes() -> None:
    """The serving image carries neither kopf nor the Kubernetes client."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "serving_image").rglob("*.py")
        if any(
            line.strip().startswith(
                ("import kopf", "from kopf", "import kubernetes", "from kubernetes")
            )
            for line in path.read_text().splitlines()
        )
    ]
    assert offenders == []


def test_cli_versions() -> None:
    """Both console scripts answer --version with the distribution's version."""
    import kubeserve

    for module, name in (
        ("kubeserve.cli", "kubeserve"),
        ("kubeserve_runtime.cli", "kubeserve-runtime"),
    ):
        out = subprocess.run(
            [sys.executable, "-m", module, "--version"], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == f"{name} {kubeserve.__version__}"
