"""The images kubeserve builds for a real node, and how each one is built or found cached.

``pause`` needs gcc and the Go module cache; ``runtime`` and ``operator`` need root
(debootstrap and chroot), the Debian mirror of this host's apt sources and PyPI.
Every image is an archive ``<name>-<key>.tar`` whose key hashes all of its inputs, so
asking for an image whose inputs did not change finds the archive and builds nothing.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import kubeserve
from kubeserve.images import archive, pause, recipe, rootfs, store, venv

Log = Callable[[str], None]

NAMES = ("pause", "runtime", "operator")

DOCKERFILES = {"runtime": "serving_image/Dockerfile", "operator": "operator/Dockerfile"}
"""The one definition of each Python image, shared with ``docker build``."""

KEEP = 3
"""Archives (and app layers) kept per image: the current one plus a few recent ones."""

ROOTFS_LAYER = {"keep_owner": True, "keep_mtime": True}
"""How the three rootfs folders become layers: owners (uid 1000 files) and mtimes (valid
``.pyc`` files) kept; see :mod:`kubeserve.images.archive`."""


@dataclass(frozen=True)
class Built:
    """One image archive, and whether this call built it or found it cached."""

    name: str
    path: Path
    reference: str
    cached: bool
    seconds: float
    steps: dict[str, float] = field(default_factory=dict)
    """Seconds per step that ran (a cached step is absent)."""


def pause_archive() -> tuple[Path, Path]:
    """Return (the k8s.io/kubernetes module folder, the pause archive path)."""
    module = pause.module_dir()
    return module, store.archive_path("pause", pause.inputs_key(module))


def build_pause(log: Log) -> Built:
    """Build the pause image unless its archive is cached."""
    started = time.monotonic()
    module, target = pause_archive()
    with store.locked():
        if target.exists():
            return Built("pause", target, pause.REFERENCE, True, time.monotonic() - started)
        log(f"compiling pause from {module / pause.SOURCE}")
        pause.write_image(module, target)
    spent = time.monotonic() - started
    return Built("pause", target, pause.REFERENCE, False, spent, {"pause": spent})


def source_root() -> Path:
    """Return the checkout this kubeserve is imported from (the Docker build context)."""
    root = Path(kubeserve.__file__).resolve().parents[2]
    if not all((root / path).is_file() for path in DOCKERFILES.values()):
        raise store.ImageError(
            f"{root} is not a kubeserve checkout (no Dockerfiles): the runtime and operator "
            "images are built from the sources, run from a checkout"
        )
    return root


def reference(name: str, root: Path) -> str:
    """Return the name the cluster will ask for: what the operator and chart render by default.

    runtime: the operator config's default ``runtime_image``; operator: the chart's
    ``operator.image.repository`` with its ``tag``, or the chart's appVersion when the tag
    is empty (templates/_helpers.tpl ``kubeserve.operatorImage``).
    """
    if name == "runtime":
        from kubeserve.config import OperatorConfig

        default: str = OperatorConfig.model_fields["runtime_image"].default
        return default
    values = yaml.safe_load((root / "values.yaml").read_text())["operator"]["image"]
    chart = yaml.safe_load((root / "Chart.yaml").read_text())
    return f"{values['repository']}:{values['tag'] or chart['appVersion']}"


@dataclass(frozen=True)
class Plan:
    """Every key and folder of one Python image, computed without building anything."""

    name: str
    root: Path
    spec: recipe.Recipe
    reference: str
    release: str
    base: str
    deps: str
    app: str
    image: str

    @property
    def deps_dir(self) -> Path:
        return store.images_dir() / f"deps-{self.deps}"

    @property
    def app_dir(self) -> Path:
        return store.images_dir() / f"app-{self.name}-{self.app}"

    @property
    def archive(self) -> Path:
        return store.archive_path(self.name, self.image)


def plan(name: str, root: Path | None = None) -> Plan:
    """Return the keys of image ``name`` for the current sources."""
    root = root or source_root()
    spec = recipe.read_recipe(root / DOCKERFILES[name])
    release = rootfs.release()
    base = rootfs.base_key(release)
    deps = venv.deps_key(base, root, spec)
    app = venv.app_key(deps, root, spec)
    ref = reference(name, root)
    image = store.key("image", app, spec.config.document(), ref, ROOTFS_LAYER)
    return Plan(name, root, spec, ref, release, base, deps, app, image)


def _ensure(folder: Path, build: Callable[[Path], object]) -> float | None:
    """Build ``folder`` via a ``.partial`` sibling unless it exists; return the seconds."""
    if folder.is_dir():
        return None
    started = time.monotonic()
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    build(partial)
    partial.rename(folder)
    return time.monotonic() - started


def to_prune(entries: Mapping[Path, float], keep: int = KEEP) -> list[Path]:
    """Return the entries (path -> last use) beyond the ``keep`` most recently used ones.

    Half-built ``.partial`` folders are never listed: they belong to a build in progress
    or are replaced by the next one.
    """
    finished = [path for path in entries if ".partial" not in path.name]
    finished.sort(key=lambda path: entries[path], reverse=True)
    return finished[keep:]


def _prune(current: Plan) -> None:
    """Keep this image's :data:`KEEP` most recently used archives and app layers.

    Not only the current one: the cache is shared by every checkout on the machine (a
    worktree per branch), each with its own current key, and deleting another checkout's
    archive while its test session imports it fails that session.
    """
    folder = store.images_dir()
    for pattern in (f"{current.name}-*.tar", f"app-{current.name}-*"):
        for path in to_prune({p: p.stat().st_mtime for p in folder.glob(pattern)}):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def _used(path: Path) -> Path:
    """Mark a cache entry as just used (its mtime orders pruning) and return it."""
    os.utime(path)
    return path


def build_python_image(name: str, log: Log) -> Built:
    """Build the runtime or operator image layer by layer, each layer only when missing."""
    started = time.monotonic()
    todo = plan(name)
    steps: dict[str, float] = {}
    with store.locked():
        if todo.archive.exists():
            _used(todo.archive)
            return Built(name, todo.archive, todo.reference, True, time.monotonic() - started)
        base, spent = rootfs.ensure_base(todo.release, log)
        if spent is not None:
            steps["base"] = spent
        if not todo.deps_dir.is_dir():
            log(f"installing {', '.join(todo.spec.extras)} dependencies into {venv.VENV}")
        spent = _ensure(todo.deps_dir, lambda up: venv.build_deps(base, todo.root, todo.spec, up))
        if spent is not None:
            steps["deps"] = spent
        lowers = [todo.deps_dir, base]
        spent = _ensure(todo.app_dir, lambda up: venv.build_app(lowers, todo.root, todo.spec, up))
        if spent is not None:
            steps["app"] = spent
        _used(todo.app_dir)
        log(f"writing {todo.archive.name}")
        writing = time.monotonic()
        layers = [
            archive.Layer(path, **ROOTFS_LAYER) for path in (base, todo.deps_dir, todo.app_dir)
        ]
        archive.write_archive(todo.archive, todo.reference, layers, todo.spec.config)
        steps["archive"] = time.monotonic() - writing
        _prune(todo)
    return Built(name, todo.archive, todo.reference, False, time.monotonic() - started, steps)


def archive_of(name: str) -> Path:
    """Return the archive path image ``name`` has for the current inputs (built or not)."""
    if name == "pause":
        return pause_archive()[1]
    return plan(name).archive


def build_image(name: str, log: Log) -> Built:
    """Build (or find cached) the image called ``name``."""
    if name == "pause":
        return build_pause(log)
    return build_python_image(name, log)
