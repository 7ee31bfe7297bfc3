"""Fixtures of the chart tests: the chart folder and a renderer built on the real helm."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.chart import helm

CHART = Path(__file__).resolve().parents[2]

Render = Callable[..., list[dict[str, Any]]]
"""helm template -> objects; keyword arguments as in kubeserve.chart.helm.template."""


@pytest.fixture(scope="session")
def chart() -> Path:
    """Return the chart folder (the repository root)."""
    return CHART


@pytest.fixture(scope="session")
def render(helm_binary: Path) -> Render:
    """Return a function that runs `helm template` and returns the rendered objects."""

    def run(
        values: Mapping[str, str] | None = None,
        *,
        values_files: tuple[Path, ...] = (),
        namespace: str = helm.NAMESPACE,
        release: str = helm.RELEASE,
        include_crds: bool = False,
    ) -> list[dict[str, Any]]:
        text = helm.template(
            helm_binary,
            CHART,
            release=release,
            namespace=namespace,
            values=values,
            values_files=values_files,
            include_crds=include_crds,
        )
        return [obj for obj in yaml.safe_load_all(text) if obj]

    return run
