"""The two Python layers of an image: third-party dependencies, then kubeserve alone.

Limits: installs from PyPI (or what this host's ``PIP_INDEX_URL`` and proxy variables
say) inside a chroot of the base, with the host's CA bundle, so it needs the network on
a cold cache. Requirement markers are left to pip, which evaluates them in the image's
own interpreter.

Why two layers: the dependency layer (hundreds of MB: numpy, scipy, grpcio...) is keyed
by pyproject.toml's dependency lists for the chosen extras and the Dockerfile's user
setup, so a code change never reinstalls it; the app layer is the kubeserve wheel
installed ``--no-deps`` on top (a second or two), followed by ``pip check`` (the deps
layer really satisfies the wheel) and the Dockerfile's own checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from kubeserve.images import chroot, recipe, store

VENV = "/opt/kubeserve"
PROJECT = "kubeserve"
PASSED_THROUGH = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_DEFAULT_TIMEOUT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
"""Host variables that say how to reach the package index; carried into the chroot."""

CA_NAMES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
DEFAULT_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def requirements(pyproject: Mapping[str, Any], extras: Sequence[str]) -> list[str]:
    """Return the third-party requirements of ``kubeserve[extras]``, self-references expanded."""
    project: Mapping[str, Any] = pyproject["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    found: list[str] = list(project.get("dependencies", []))
    seen: set[str] = set()
    pending = list(extras)
    while pending:
        extra = pending.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        if extra not in optional:
            raise store.ImageError(f"pyproject.toml has no extra {extra!r}")
        for line in optional[extra]:
            requirement = Requirement(line)
            if requirement.name == PROJECT:
                pending.extend(sorted(requirement.extras))
            else:
                found.append(line)
    return sorted(dict.fromkeys(found))


def chroot_env(build_env: Mapping[str, str]) -> dict[str, str]:
    """Return the chroot's environment: the Dockerfile's build ENV plus index settings."""
    env = {**build_env, "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
    env.update({name: os.environ[name] for name in PASSED_THROUGH if name in os.environ})
    env["PIP_CERT"] = f"{chroot.SHARED}/ca.crt"
    return env


def host_ca() -> Path:
    """Return the CA bundle this host's pip trusts (a corporate proxy's CA included)."""
    for name in CA_NAMES:
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return Path(value)
    return DEFAULT_CA


def deps_key(base: str, root: Path, spec: recipe.Recipe) -> str:
    """Return the deps layer's key: base, requirement lists, setup RUN and build ENV."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    return store.key("deps", base, requirements(pyproject, spec.extras), spec.setup, spec.build_env)


def build_deps(base: Path, root: Path, spec: recipe.Recipe, upper: Path) -> None:
    """Write the deps layer (user setup + venv with third-party packages) into ``upper``."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    with tempfile.TemporaryDirectory(prefix="kubeserve-deps-") as tmp:
        shared = Path(tmp)
        shutil.copyfile(host_ca(), shared / "ca.crt")
        (shared / "requirements.txt").write_text(
            "\n".join(requirements(pyproject, spec.extras)) + "\n"
        )
        script = (
            f"{spec.setup}\n"
            f"python3 -m venv {VENV}\n"
            f"{VENV}/bin/pip install --requirement {chroot.SHARED}/requirements.txt\n"
        )
        chroot.run_in_overlay([base], upper, script, chroot_env(spec.build_env), shared)


def app_key(deps: str, root: Path, spec: recipe.Recipe) -> str:
    """Return the app layer's key: the deps layer, the wheel's sources, the checks."""
    return store.key("app", deps, store.tree_key(root, spec.sources), spec.checks)


def build_wheel(root: Path, spec: recipe.Recipe, out: Path) -> Path:
    """Build the kubeserve wheel from exactly the files the Dockerfile COPYs.

    The sources are copied to a scratch folder first, as a Docker build context would
    be, so the checkout is never written to and nothing else leaks into the wheel.
    """
    with tempfile.TemporaryDirectory(prefix="kubeserve-src-") as tmp:
        src = Path(tmp)
        for relative in spec.sources:
            source, target = root / relative, src / relative
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        command = [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--wheel-dir", str(out), str(src)),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise store.ImageError(f"building the kubeserve wheel failed:\n{result.stderr}")
    (wheel,) = out.glob(f"{PROJECT}-*.whl")
    return wheel


def build_app(lowers: Sequence[Path], root: Path, spec: recipe.Recipe, upper: Path) -> str:
    """Write the app layer (kubeserve --no-deps) into ``upper``; return the checks' output."""
    with tempfile.TemporaryDirectory(prefix="kubeserve-app-") as tmp:
        shared = Path(tmp)
        shutil.copyfile(host_ca(), shared / "ca.crt")
        wheel = build_wheel(root, spec, shared)
        script = "\n".join(
            [
                f"{VENV}/bin/pip install --no-deps --no-index {chroot.SHARED}/{wheel.name}",
                f"{VENV}/bin/pip check",
                *spec.checks,
            ]
        )
        return chroot.run_in_overlay(lowers, upper, script, chroot_env(spec.build_env), shared)
