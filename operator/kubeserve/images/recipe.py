"""An image definition read from the project's own Dockerfile, so there is one source.

Limits: understands the shape of ``serving_image/Dockerfile`` and ``operator/Dockerfile``,
not every Dockerfile: two stages, a build stage whose one ``RUN`` installs the kubeserve
wheel with ``pip install "...[extras]"`` followed by ``&&``-joined checks, and a final
stage that sets ENV, RUN (user setup), WORKDIR, USER, EXPOSE, ENTRYPOINT, CMD. A
Dockerfile that drifts from that shape fails here with a message rather than building
something different. ``$PATH`` in ENV is expanded against :data:`BASE_PATH`, the PATH a
Debian image has when its config sets none.

The extras expression (``[runtime${EXTRAS:+,${EXTRAS}}]``) is expanded by ``sh`` itself,
with the build argument's value, because that is what runs it in a Docker build.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockerfile_parse import DockerfileParser

from kubeserve.images import archive, store

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH of a Debian image (and containerd's default) before the Dockerfile prepends to it."""

INSTALL = "pip install"


class RecipeError(store.ImageError):
    """The Dockerfile does not have the shape this reader understands."""


@dataclass(frozen=True)
class Recipe:
    """What the Dockerfile says the image is, in the terms the image builder needs."""

    dockerfile: Path
    config: archive.ImageConfig
    build_env: dict[str, str]
    """ENV in effect at the build stage's RUN (pip settings)."""
    extras: tuple[str, ...]
    """The kubeserve extras the wheel is installed with, e.g. ``runtime, onnx, sklearn``."""
    setup: str
    """The final stage's RUN (user and folder setup), run as is."""
    checks: tuple[str, ...]
    """The build stage's steps after the install (import guards, ``--version``)."""
    sources: tuple[str, ...]
    """What the build stage COPYs from the context (the wheel's inputs)."""


def _stages(parser: DockerfileParser) -> list[list[tuple[str, str, Any]]]:
    """Split (instruction, value, context) triples at each FROM."""
    stages: list[list[tuple[str, str, Any]]] = []
    for item, context in zip(parser.structure, parser.context_structure, strict=True):
        if item["instruction"] == "FROM":
            stages.append([])
        if stages and item["instruction"] != "COMMENT":
            stages[-1].append((item["instruction"], item["value"], context))
    return stages


def _one(stage: list[tuple[str, str, Any]], instruction: str, where: str) -> tuple[str, Any]:
    """Return the value and context of the one ``instruction`` of a stage."""
    found = [(value, context) for name, value, context in stage if name == instruction]
    if len(found) != 1:
        raise RecipeError(f"expected one {instruction} in the {where} stage, found {len(found)}")
    return found[0]


def _exec_form(value: str) -> tuple[str, ...]:
    """Return an ENTRYPOINT/CMD as a list: JSON form as is, shell form under ``/bin/sh -c``."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return ("/bin/sh", "-c", value)
    return tuple(str(part) for part in parsed)


def expand_extras(install_step: str, args: dict[str, str]) -> tuple[str, ...]:
    """Return the extras of ``pip install "...[EXPR]"`` with build args expanded by ``sh``."""
    match = re.search(r"\[([^\]]*)\]", install_step)
    if match is None:
        raise RecipeError(f"no [extras] in the install step: {install_step}")
    result = subprocess.run(
        ["sh", "-c", f'printf "%s" "{match.group(1)}"'],
        env={"PATH": BASE_PATH, **args},
        capture_output=True,
        text=True,
        check=True,
    )
    return tuple(part for part in result.stdout.split(",") if part)


def read_recipe(dockerfile: Path, build_args: dict[str, str] | None = None) -> Recipe:
    """Read the image definition of ``dockerfile``; ``build_args`` act like ``--build-arg``."""
    parser = DockerfileParser(
        str(dockerfile), env_replace=True, parent_env={"PATH": BASE_PATH}, build_args=build_args
    )
    stages = _stages(parser)
    if len(stages) != 2:
        raise RecipeError(f"{dockerfile}: expected a build stage and a final stage")
    build, final = stages
    run, run_context = _one(build, "RUN", "build")
    steps = [step.strip() for step in run.split("&&")]
    installs = [n for n, step in enumerate(steps) if INSTALL in step]
    if len(installs) != 1:
        raise RecipeError(f"{dockerfile}: expected one `{INSTALL}` step in the build RUN")
    args = {**run_context.args, **(build_args or {})}
    last = final[-1][2]
    ports = tuple(p for value, _ in _all(final, "EXPOSE") for p in value.split())
    config = archive.ImageConfig(
        entrypoint=_exec_form(_one(final, "ENTRYPOINT", "final")[0]),
        cmd=tuple(_exec_form(_one(final, "CMD", "final")[0])) if _all(final, "CMD") else (),
        env=dict(last.envs),
        user=_one(final, "USER", "final")[0],
        workdir=_one(final, "WORKDIR", "final")[0],
        ports=ports,
    )
    copies = [shlex.split(value) for value, _ in _all(build, "COPY")]
    return Recipe(
        dockerfile=dockerfile,
        config=config,
        build_env=dict(run_context.envs),
        extras=expand_extras(steps[installs[0]], args),
        setup=_one(final, "RUN", "final")[0],
        checks=tuple(steps[installs[0] + 1 :]),
        sources=tuple(src for *srcs, _dest in copies for src in srcs),
    )


def _all(stage: list[tuple[str, str, Any]], instruction: str) -> list[tuple[str, Any]]:
    """Return the value and context of every ``instruction`` of a stage."""
    return [(value, context) for name, value, context in stage if name == instruction]
