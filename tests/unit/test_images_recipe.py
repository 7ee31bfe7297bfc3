"""Image definitions come from the Dockerfiles, the Debian mirror from apt's sources, and
the dependency layer from pyproject.toml: each reader on its own, without building."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from kubeserve.images import catalog, recipe, rootfs, store, venv

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "serving_image" / "Dockerfile"
OPERATOR = ROOT / "operator" / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_runtime_recipe() -> None:
    """The serving image's final stage and build stage, as the image builder uses them."""
    spec = recipe.read_recipe(RUNTIME)
    assert spec.config.entrypoint == ("kubeserve-runtime",)
    assert spec.config.cmd == ("serve", "--model-dir", "/mnt/models")
    assert spec.config.user == "1000:1000"
    assert spec.config.workdir == "/tmp"
    assert spec.config.ports == ("8080", "8081", "8082")
    assert spec.config.env["PATH"] == f"/opt/kubeserve/bin:{recipe.BASE_PATH}"
    assert spec.config.env["HOME"] == "/tmp"
    assert spec.extras == ("runtime", "onnx", "sklearn")
    assert "chown 1000:1000 /mnt/models" in spec.setup
    assert spec.checks[-1] == "/opt/kubeserve/bin/kubeserve-runtime --version"
    assert "kopf" in spec.checks[0]
    assert spec.build_env["PIP_NO_CACHE_DIR"] == "1"
    assert "operator/kubeserve/" in spec.sources


def test_build_args_change_the_extras() -> None:
    """EXTRAS behaves as `--build-arg EXTRAS=...` would, `${EXTRAS:+,...}` included."""
    assert recipe.read_recipe(RUNTIME, {"EXTRAS": "xgboost"}).extras == ("runtime", "xgboost")
    assert recipe.read_recipe(RUNTIME, {"EXTRAS": ""}).extras == ("runtime",)


def test_operator_recipe() -> None:
    spec = recipe.read_recipe(OPERATOR)
    assert spec.config.entrypoint == ("kubeserve", "run")
    assert spec.config.cmd == ()
    assert spec.config.ports == ()
    assert spec.extras == ("operator",)
    assert spec.checks == ("/opt/kubeserve/bin/kubeserve --version",)


def test_a_dockerfile_of_another_shape_is_refused(tmp_path: Path) -> None:
    single = tmp_path / "Dockerfile"
    single.write_text("FROM debian\nRUN true\nUSER 1000\n")
    with pytest.raises(recipe.RecipeError, match="build stage and a final stage"):
        recipe.read_recipe(single)


def test_requirements_expand_extras_and_self_references() -> None:
    """Third-party requirements only: the base list, each extra, kubeserve[...] expanded."""
    runtime = venv.requirements(PYPROJECT, ("runtime", "sklearn"))
    assert "numpy>=2.4" in runtime
    assert "pydantic>=2.14" in runtime
    assert not any(line.startswith(("kopf", "kubeserve")) for line in runtime)
    dev = venv.requirements(PYPROJECT, ("dev",))
    assert "kopf>=1.45" in dev
    assert not any(line.startswith("kubeserve") for line in dev)
    with pytest.raises(store.ImageError, match="no extra"):
        venv.requirements(PYPROJECT, ("nonesuch",))


DEB822 = """Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_mirror_from_deb822_and_one_line_sources() -> None:
    """The first source that serves the release itself; disabled files do not count."""
    disabled = ("other.list.disabled-by-farm", "deb http://elsewhere.example/x bookworm main\n")
    assert (
        rootfs.mirror("bookworm", [disabled, ("debian.sources", DEB822)])
        == "http://mirror.example/debian"
    )
    one_line = (
        "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n"
    )
    assert rootfs.mirror("bookworm", [("sources.list", one_line)]) == "http://one.example/debian"
    assert rootfs.mirror("bookworm-security", [("d.sources", DEB822)]).endswith("security")
    off = DEB822.replace("Types: deb\n", "Types: deb\nEnabled: no\n", 1)
    with pytest.raises(rootfs.BaseError, match="trixie"):
        rootfs.mirror("trixie", [("d.sources", off)])


def test_codename() -> None:
    assert rootfs.codename('NAME="Debian"\nVERSION_CODENAME=bookworm\n') == "bookworm"
    with pytest.raises(rootfs.BaseError):
        rootfs.codename("NAME=Other\n")


def test_tree_key_follows_content_not_bytecode(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    first = store.tree_key(tmp_path, ["pkg"])
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert store.tree_key(tmp_path, ["pkg"]) == first
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    assert store.tree_key(tmp_path, ["pkg"]) != first


def test_prune_keeps_the_most_recently_used() -> None:
    """Several checkouts share the cache: the newest few survive, half-built ones are left."""
    entries = {Path(f"runtime-{n}.tar"): float(n) for n in range(5)}
    entries[Path("app-runtime-x.partial")] = 0.0
    assert catalog.to_prune(entries, keep=3) == [Path("runtime-1.tar"), Path("runtime-0.tar")]
    assert catalog.to_prune(entries, keep=10) == []
