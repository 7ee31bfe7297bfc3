"""Image archives built for real and read back by independent tools.

``skopeo`` (Debian's, installed by ``kubeserve cluster prepare-host``) reads the archive as
an ``oci-archive:``; a throwaway containerd (own root, state and socket in a temporary
folder, CRI plugin off) imports it with ``ctr``, as the real node will. Each check skips
with the reason when its tool, or root, is missing. The pause build is a second at most;
it lands in the shared image cache, so a later session finds it cached.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement

from kubeserve.cli import main
from kubeserve.images import archive, catalog, containerd, pause, recipe, venv
from kubeserve.local.ports import free_port
from kubeserve_runtime.testing import wait_until

SKOPEO = shutil.which("skopeo")
CONTAINERD = shutil.which("containerd")
STARTUP_SECONDS = 30


def _skopeo(*args: str) -> dict[str, object]:
    """Run ``skopeo inspect ARGS`` and return its JSON."""
    if SKOPEO is None:
        pytest.skip("skopeo is not installed (kubeserve cluster prepare-host installs it)")
    result = subprocess.run([SKOPEO, "inspect", *args], capture_output=True, text=True, check=True)
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


@pytest.fixture(scope="module")
def pause_image() -> catalog.Built:
    """The pause image, built (or found cached) once for this module."""
    if shutil.which("gcc") is None or shutil.which("go") is None:
        pytest.skip("the pause image needs gcc and the Go toolchain")
    return catalog.build_image("pause", log=lambda _: None)


@pytest.fixture(scope="module")
def throwaway_containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private containerd with the CRI plugin disabled; yields its socket."""
    if os.geteuid() != 0 or CONTAINERD is None or shutil.which("ctr") is None:
        pytest.skip("a throwaway containerd needs root, containerd and ctr")
    work = tmp_path_factory.mktemp("containerd")
    socket = work / "containerd.sock"
    config = work / "config.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{work / "root"}"\nstate = "{work / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{socket}"\n'
        f'[ttrpc]\n  address = "{work / "ttrpc.sock"}"\n'
    )
    with (work / "containerd.log").open("w") as log:
        proc = subprocess.Popen(
            [CONTAINERD, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        what = "containerd answers or exits"
        wait_until(lambda: _answers(socket) or proc.poll() is not None, what, STARTUP_SECONDS)
        if proc.poll() is not None:
            pytest.fail(f"containerd did not start: {(work / 'containerd.log').read_text()}")
        yield socket
    finally:
        proc.terminate()
        proc.wait(timeout=STARTUP_SECONDS)


def _answers(socket: Path) -> bool:
    """Return whether a containerd answers on ``socket``."""
    if not socket.exists():
        return False
    try:
        containerd.ctr(socket, "version")
    except containerd.ContainerdError:
        return False
    return True


@pytest.mark.slow
def test_pause_archive_as_skopeo_reads_it(pause_image: catalog.Built) -> None:
    """skopeo finds the image by its tag, with upstream's user and entrypoint, one layer."""
    target = f"oci-archive:{pause_image.path}:3.10"
    config = _skopeo("--config", target)
    assert config["config"] == {"User": pause.USER, "Entrypoint": ["/pause"]}
    manifest = _skopeo(target)
    assert manifest["Architecture"] == archive.architecture()
    assert len(manifest["Layers"]) == 1  # type: ignore[arg-type]


@pytest.mark.slow
def test_pause_binary_is_static_and_runs(pause_image: catalog.Built, tmp_path: Path) -> None:
    """The one file is a static executable that reports upstream's pause version."""
    contents = archive.read_archive(pause_image.path)
    (layer,) = contents.layers
    assert [m.name for m in layer] == ["pause"]
    with tarfile.open(pause_image.path) as tar:
        blob = tar.extractfile(f"blobs/sha256/{contents.config['rootfs']['diff_ids'][0][7:]}")
        assert blob is not None
        with tarfile.open(fileobj=blob) as inner:
            inner.extract("pause", tmp_path, filter="data")
    result = subprocess.run(
        [str(tmp_path / "pause"), "-v"], capture_output=True, text=True, check=True
    )
    tag = pause.upstream_tag((pause.module_dir() / pause.MAKEFILE).read_text())
    assert result.stdout.strip() == f"pause.c v{tag}-kubeserve"
    assert (
        b"interp"
        not in subprocess.run(
            ["readelf", "-l", str(tmp_path / "pause")], capture_output=True, check=True
        ).stdout
    )


@pytest.mark.slow
def test_pause_is_cached_by_content(pause_image: catalog.Built) -> None:
    """Asking again builds nothing: the archive for these inputs exists."""
    again = catalog.build_image("pause", log=lambda _: None)
    assert again.cached
    assert again.path == pause_image.path == catalog.archive_of("pause")


@pytest.mark.slow
def test_containerd_imports_pause_by_name(
    pause_image: catalog.Built, throwaway_containerd: Path
) -> None:
    """ctr import names the image from the archive's annotation; containerd lists it."""
    names = containerd.import_image(throwaway_containerd, pause_image.path)
    assert names == [pause.REFERENCE]
    info = containerd.ctr(throwaway_containerd, "images", "check")
    line = next(row for row in info.splitlines() if row.startswith(pause.REFERENCE))
    assert "complete" in line


# --- the runtime and operator images (root, debootstrap, network on a cold cache) ---------

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {
    "runtime": ROOT / "serving_image" / "Dockerfile",
    "operator": ROOT / "operator" / "Dockerfile",
}
READY_SECONDS = 120


@pytest.fixture(scope="session")
def python_images() -> dict[str, catalog.Built]:
    """The runtime and operator images, built once per session (cached across sessions).

    Cold: debootstrap plus two pip installs, about a minute and a half here; warm: none.
    """
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.skip("building the runtime/operator images needs root and debootstrap")
    return {name: catalog.build_image(name, log=lambda _: None) for name in DOCKERFILES}


def _dockerfile_final_stage(path: Path) -> dict[str, object]:
    """The final stage read straight from dockerfile-parse, not through the image builder."""
    parser = DockerfileParser(str(path), env_replace=True, parent_env={"PATH": "$PATH"})
    final: dict[str, str] = {}
    args: dict[str, str] = {}
    for item in parser.structure:
        if item["instruction"] == "FROM":
            final = {}
        elif item["instruction"] == "ARG" and "=" in item["value"]:
            name, _, value = item["value"].partition("=")
            args[name] = value
        elif item["instruction"] != "COMMENT":
            final[item["instruction"]] = item["value"]
    return {
        "env": parser.envs,
        "user": final["USER"],
        "workdir": final["WORKDIR"],
        "entrypoint": json.loads(final["ENTRYPOINT"]),
        "cmd": json.loads(final["CMD"]) if "CMD" in final else None,
        "ports": {f"{p}/tcp": {} for p in final["EXPOSE"].split()} if "EXPOSE" in final else None,
        "extras": args.get("EXTRAS"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_image_config_agrees_with_its_dockerfile(
    python_images: dict[str, catalog.Built], name: str
) -> None:
    """skopeo's view of the built config equals the Dockerfile's final stage, and the venv
    holds the Dockerfile's extras (and, for the runtime, no kopf or Kubernetes client)."""
    built = python_images[name]
    expected = _dockerfile_final_stage(DOCKERFILES[name])
    config = _skopeo("--config", f"oci-archive:{built.path}")["config"]
    assert isinstance(config, dict)
    env = dict(line.split("=", 1) for line in config["Env"])
    image_path = env.pop("PATH")
    dockerfile_env = dict(expected["env"])  # type: ignore[call-overload]
    assert image_path == dockerfile_env.pop("PATH").replace("$PATH", recipe.BASE_PATH)
    assert env == dockerfile_env
    assert config["User"] == expected["user"]
    assert config["WorkingDir"] == expected["workdir"]
    assert config["Entrypoint"] == expected["entrypoint"]
    assert config.get("Cmd") == expected["cmd"]
    assert config.get("ExposedPorts") == expected["ports"]
    assert built.reference == catalog.reference(name, ROOT)
    installed = {
        m.name.split("/")[-1].split("-")[0].lower().replace("_", "-")
        for layer in archive.read_archive(built.path).layers
        for m in layer
        if m.name.endswith(".dist-info") and "/site-packages/" in m.name
    }
    extras = ["runtime", *str(expected["extras"]).split(",")] if name == "runtime" else ["operator"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = {
        Requirement(line).name.lower().replace("_", "-")
        for line in venv.requirements(pyproject, extras)
        if _applies(Requirement(line))
    }
    assert wanted <= installed, wanted - installed
    assert "kubeserve" in installed
    if name == "runtime":
        assert not {"kopf", "kubernetes"} & installed


def _applies(requirement: Requirement) -> bool:
    """Whether a requirement's marker holds here (the image is this machine's platform)."""
    return requirement.marker is None or requirement.marker.evaluate()


def _ctr_run(socket: Path, image: str, *args: str, mounts: tuple[str, ...] = ()) -> str:
    """Run a command in a read-only container of ``image`` as its own user; return stdout."""
    name = f"t{time.monotonic_ns()}"
    options = [f"--mount={m}" for m in ("type=tmpfs,src=tmpfs,dst=/tmp,options=rw:nosuid", *mounts)]
    return containerd.ctr(
        socket, "run", "--rm", "--read-only", "--net-host", *options, image, name, *args
    )


@pytest.mark.slow
def test_runtime_serves_read_only_as_uid_1000(
    python_images: dict[str, catalog.Built], throwaway_containerd: Path, tmp_path: Path
) -> None:
    """The runtime image trains and serves the iris example with a read-only root, as uid
    1000, writing only to /tmp (tmpfs) and /mnt/models (owned by 1000)."""
    built = python_images["runtime"]
    (name,) = containerd.import_image(throwaway_containerd, built.path)
    models = tmp_path / "models"
    models.mkdir()
    os.chown(models, 1000, 1000)
    model_mount = f"type=bind,src={models},dst=/mnt/models,options=rbind:rw"
    examples = f"type=bind,src={ROOT / 'examples'},dst=/examples,options=rbind:ro"
    identity = _ctr_run(
        throwaway_containerd, name, "sh", "-c", "id -u; id -g; stat -c %u /mnt/models"
    )
    assert identity.split() == ["1000", "1000", "1000"]
    stale = _ctr_run(
        throwaway_containerd,
        name,
        "sh",
        "-c",
        "python -v -c 'import kubeserve_runtime.server, sklearn' 2>&1"
        " | grep -c 'bytecode is stale' || true",
    )
    assert stale.strip() == "0", "the image's .pyc files do not match their sources' mtimes"
    _ctr_run(
        throwaway_containerd,
        name,
        "python",
        "/examples/01-sklearn-iris/make_model.py",
        "--out",
        "/mnt/models/iris",
        mounts=(model_mount, examples),
    )
    assert (models / "iris" / "model.joblib").stat().st_uid == 1000
    port, grpc, metrics = free_port(), free_port(), free_port()
    task = f"serve{time.monotonic_ns()}"
    containerd.ctr(
        throwaway_containerd,
        "run",
        "--detach",
        "--read-only",
        "--net-host",
        "--mount=type=tmpfs,src=tmpfs,dst=/tmp,options=rw:nosuid",
        f"--mount={model_mount}",
        name,
        task,
        "kubeserve-runtime",
        "serve",
        "--model-dir",
        "/mnt/models/iris",
        "--model-name",
        "iris",
        "--http-port",
        str(port),
        "--grpc-port",
        str(grpc),
        "--metrics-port",
        str(metrics),
    )
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, "the runtime in the container is ready", READY_SECONDS, every=0.2)
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/models/iris:predict",
            json={"instances": [[5.1, 3.5, 1.4, 0.2]]},
        )
        assert reply.json() == {"predictions": [0]}
    finally:
        containerd.ctr(throwaway_containerd, "tasks", "kill", "--signal", "SIGKILL", task)
        _wait_task_gone(throwaway_containerd, task)
        containerd.ctr(throwaway_containerd, "containers", "delete", task)


def _wait_task_gone(socket: Path, task: str) -> None:
    """Wait until containerd no longer lists ``task`` as running."""

    def gone() -> bool:
        rows = containerd.ctr(socket, "tasks", "list").splitlines()
        return not any(row.startswith(task) and "RUNNING" in row for row in rows)

    wait_until(gone, f"containerd task {task} stopped", READY_SECONDS, every=0.1)


@pytest.mark.slow
def test_operator_starts_read_only_as_uid_1000(
    python_images: dict[str, catalog.Built], throwaway_containerd: Path
) -> None:
    """The operator image imports its controller with a read-only root, as uid 1000."""
    (name,) = containerd.import_image(throwaway_containerd, python_images["operator"].path)
    out = _ctr_run(
        throwaway_containerd,
        name,
        "sh",
        "-c",
        "id -u && python -c 'import kopf, kubeserve.controller.run' && kubeserve run --help",
    )
    assert out.splitlines()[0] == "1000"
    assert "usage: kubeserve run" in out


@pytest.mark.slow
def test_cli_builds_then_imports_by_name(
    pause_image: catalog.Built, throwaway_containerd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kubeserve image build pause` says cached; `image import pause` finds its archive."""
    assert main(["image", "build", "pause"]) == 0
    assert "cached" in capsys.readouterr().out
    assert main(["image", "import", "--address", str(throwaway_containerd), "pause"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"imported {pause.REFERENCE} from {pause_image.path}"
    )
    missing = str(pause_image.path.with_name("nonesuch.tar"))
    assert main(["image", "import", "--address", str(throwaway_containerd), missing]) == 1
    assert "no archive" in capsys.readouterr().err
