"""The Debian base layer: ``debootstrap --variant=minbase`` of this host's release.

Limits: Debian hosts only (the release is this host's ``VERSION_CODENAME``, the mirror the
first ``deb`` source of that release in this host's apt sources, one-line or deb822
format; no mirror is named in code). Needs root and ``debootstrap``.

Debian's ``python3`` (3.11.2 on bookworm, with Debian's backported security fixes)
stands in for the Dockerfiles' ``python:3.11.x-slim`` base, which needs a registry: see
docs/DESIGN.md for what that changes. The base holds no kubeserve user: the Dockerfile's
own final-stage RUN adds it in the next layer, so both images share this one.

A build writes ``base-<key>.partial`` and renames it to ``base-<key>`` when complete.
What a host leaks into a debootstrap tree (its resolv.conf and hostname, apt's package
lists and downloaded .debs) is emptied or removed; the container runtime supplies
resolv.conf and hostname at run time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kubeserve.images import store

PACKAGES = ("python3", "python3-venv", "ca-certificates")
"""What the base adds to minbase: an interpreter, venv, and CA roots for pip and S3."""

VARIANT = "minbase"
SOURCES_LIST = Path("/etc/apt/sources.list")
SOURCES_DIR = Path("/etc/apt/sources.list.d")
OS_RELEASE = Path("/etc/os-release")

EMPTIED = ("etc/resolv.conf", "etc/hostname")
REMOVED = ("var/cache/apt/archives", "var/lib/apt/lists", "var/cache/apt", "var/log")


class BaseError(store.ImageError):
    """The base layer could not be built; the message says what is missing or failed."""


def codename(os_release: str) -> str:
    """Return ``VERSION_CODENAME`` of an os-release text (``bookworm``)."""
    for line in os_release.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "VERSION_CODENAME" and value.strip().strip('"'):
            return value.strip().strip('"')
    raise BaseError("no VERSION_CODENAME in /etc/os-release: is this Debian?")


def _one_line_sources(text: str) -> list[tuple[str, list[str]]]:
    """Return (URI, suites) of each ``deb`` line of a one-line-format sources list."""
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] != ["deb"]:
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            found.append((words[0], [words[1]]))
    return found


def _deb822_sources(text: str) -> list[tuple[str, list[str]]]:
    """Return (URI, suites) of each enabled ``deb`` stanza of a deb822 ``.sources`` file."""
    found = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip() or line[0].isspace():
                continue
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
            continue
        for uri in fields.get("uris", "").split():
            found.append((uri, fields.get("suites", "").split()))
    return found


def mirror(release: str, sources: Sequence[tuple[str, str]]) -> str:
    """Return the first mirror URI that serves ``release`` itself in these apt sources.

    ``sources`` are (file name, text) in the order apt reads them; only ``.list`` and
    ``.sources`` files count (a ``*.disabled`` file does not).
    """
    for name, text in sources:
        if name.endswith(".sources"):
            entries = _deb822_sources(text)
        elif name.endswith(".list"):
            entries = _one_line_sources(text)
        else:
            continue
        for uri, suites in entries:
            if release in suites:
                return uri
    raise BaseError(f"no `deb` source for {release!r} in this host's apt sources")


def host_sources() -> list[tuple[str, str]]:
    """Return this host's apt source files as (name, text), in the order apt reads them."""
    files = [SOURCES_LIST] if SOURCES_LIST.is_file() else []
    if SOURCES_DIR.is_dir():
        files += sorted(path for path in SOURCES_DIR.iterdir() if path.is_file())
    return [(path.name, path.read_text()) for path in files]


def release() -> str:
    """Return this host's Debian release codename."""
    return codename(OS_RELEASE.read_text() if OS_RELEASE.exists() else "")


def base_key(release_name: str) -> str:
    """Return the cache key of the base: release, variant, packages and what is trimmed."""
    return store.key("base", release_name, VARIANT, PACKAGES, EMPTIED, REMOVED)


def base_dir(release_name: str) -> Path:
    """Return the folder the base rootfs of ``release_name`` lives in once built."""
    return store.images_dir() / f"base-{base_key(release_name)}"


def build_base(release_name: str, mirror_uri: str, target: Path) -> None:
    """debootstrap the base into ``target`` (removed first if half-built) and trim it."""
    if shutil.which("debootstrap") is None:
        raise BaseError("`debootstrap` is not installed (kubeserve cluster prepare-host)")
    if os.geteuid() != 0:
        raise BaseError("building the image base needs root (debootstrap, then chroot builds)")
    shutil.rmtree(target, ignore_errors=True)
    command = [
        "debootstrap",
        f"--variant={VARIANT}",
        f"--include={','.join(PACKAGES)}",
        release_name,
        str(target),
        mirror_uri,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        log = target / "debootstrap" / "debootstrap.log"
        detail = log.read_text()[-2000:] if log.exists() else result.stderr[-2000:]
        raise BaseError(f"`{' '.join(command)}` failed:\n{detail}")
    for relative in EMPTIED:
        (target / relative).unlink(missing_ok=True)
        (target / relative).write_text("")
    for relative in REMOVED:
        shutil.rmtree(target / relative, ignore_errors=True)
        (target / relative).mkdir(parents=True, exist_ok=True)


def ensure_base(release_name: str, log: Callable[[str], None]) -> tuple[Path, float | None]:
    """Return the base rootfs folder and the seconds spent building it (None: cached).

    The caller holds the image cache lock.
    """
    target = base_dir(release_name)
    if target.is_dir():
        return target, None
    started = time.monotonic()
    uri = mirror(release_name, host_sources())
    log(f"debootstrap {VARIANT} {release_name} from {uri} (a minute or two)")
    partial = target.with_name(target.name + ".partial")
    build_base(release_name, uri, partial)
    partial.rename(target)
    return target, time.monotonic() - started
