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
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeserve.images import archive, catalog, containerd, pause

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
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(socket):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"containerd did not start: {(work / 'containerd.log').read_text()}")
            time.sleep(0.1)
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
