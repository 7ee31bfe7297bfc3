"""The two Dockerfiles cannot be built here (no Docker), so their essentials are checked
by parsing them: slim multi-stage builds, a numeric non-root USER, the right extras,
no kopf or Kubernetes client in the serving image, and COPY sources that exist."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "serving_image" / "Dockerfile"
OPERATOR = ROOT / "operator" / "Dockerfile"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, value) pairs, comments dropped, continuations joined."""
    parser = DockerfileParser(str(path))
    return [
        (i["instruction"], i["value"]) for i in parser.structure if i["instruction"] != "COMMENT"
    ]


def _values(path: Path, instruction: str) -> list[str]:
    """Values of every occurrence of one instruction."""
    return [value for name, value in _instructions(path) if name == instruction]


def _install_line(path: Path) -> str:
    """The one `pip install` command (a single && step of a RUN) that installs kubeserve."""
    steps = [
        step.strip()
        for value in _values(path, "RUN")
        for step in value.split("&&")
        if "pip install" in step
    ]
    assert len(steps) == 1
    return steps[0]


def _extras() -> dict[str, list[str]]:
    """The optional-dependency groups of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    return extras


PINNED_BASE = re.compile(r"^PYTHON_IMAGE=python:3\.11\.(\d+)-slim-(bookworm|trixie)$")
PATCHED = 14  # 3.11.13 fixed the tarfile filter bypasses (CVE-2025-4517...), 3.11.14 CVE-2025-8194


def _base(path: Path) -> str:
    """The one PYTHON_IMAGE build argument."""
    (base,) = [v for v in _values(path, "ARG") if v.startswith("PYTHON_IMAGE=")]
    return base


@pytest.mark.parametrize("path", [RUNTIME, OPERATOR], ids=["runtime", "operator"])
def test_base_is_an_exact_patched_python(path: Path) -> None:
    """An exact 3.11 patch release with the tarfile fixes, on a named Debian; both
    images share it."""
    match = PINNED_BASE.match(_base(path))
    assert match, _base(path)
    assert int(match.group(1)) >= PATCHED
    assert _base(path) == _base(RUNTIME)


@pytest.mark.parametrize("path", [RUNTIME, OPERATOR], ids=["runtime", "operator"])
def test_slim_multistage_non_root(path: Path) -> None:
    """Slim base, two stages, final USER numeric uid 1000 (runAsNonRoot can check it)."""
    parser = DockerfileParser(str(path))
    assert parser.is_multistage
    assert "-slim-" in _base(path)
    assert all(v.split()[0] == "${PYTHON_IMAGE}" for v in _values(path, "FROM"))
    users = _values(path, "USER")
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) == 1000
    names = [name for name, _ in _instructions(path)]
    last_from = len(names) - 1 - names[::-1].index("FROM")
    assert "USER" in names[last_from:], "USER must be set in the final stage"


@pytest.mark.parametrize("path", [RUNTIME, OPERATOR], ids=["runtime", "operator"])
def test_copy_sources_exist_and_context_is_filtered(path: Path) -> None:
    """Every COPY from the build context names a real path; a .dockerignore keeps .venv out."""
    for value in _values(path, "COPY"):
        if value.startswith("--from="):
            continue
        *sources, _ = value.split()
        for source in sources:
            assert (ROOT / source).exists(), source
    ignore = path.with_name("Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore, "the context should be an allow-list"
    assert "!.venv" not in ignore


def test_runtime_installs_only_runtime_and_chosen_extras() -> None:
    """The serving image installs kubeserve[runtime,EXTRAS] with EXTRAS=onnx,sklearn."""
    line = _install_line(RUNTIME)
    assert re.search(r"\[runtime\$\{EXTRAS:\+,\$\{EXTRAS\}\}\]", line)
    assert "EXTRAS=onnx,sklearn" in _values(RUNTIME, "ARG")
    for forbidden in ("kopf", "kubernetes", "operator", "dev"):
        assert forbidden not in line
    guard = [v for v in _values(RUNTIME, "RUN") if "find_spec" in v]
    assert guard, "the build should fail if kopf or kubernetes slipped in"
    assert "'kopf', 'kubernetes'" in guard[0]
    extras = _extras()
    chosen = ["runtime", "onnx", "sklearn"]
    requirements = [req.lower() for name in chosen for req in extras[name]]
    assert not [r for r in requirements if r.startswith(("kopf", "kubernetes", "kubeserve["))]


def test_runtime_entrypoint_ports_and_writable_paths() -> None:
    """ENTRYPOINT kubeserve-runtime, the three ports, caches pointed at /tmp."""
    assert [json.loads(v) for v in _values(RUNTIME, "ENTRYPOINT")] == [["kubeserve-runtime"]]
    assert _values(RUNTIME, "EXPOSE") == ["8080 8081 8082"]
    env = " ".join(_values(RUNTIME, "ENV"))
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "XDG_CACHE_HOME=/tmp/.cache"):
        assert setting in env


def test_operator_installs_operator_extra_and_runs_kopf() -> None:
    """The operator image installs kubeserve[operator] and runs `kubeserve run`."""
    assert "[operator]" in _install_line(OPERATOR)
    assert [json.loads(v) for v in _values(OPERATOR, "ENTRYPOINT")] == [["kubeserve", "run"]]
