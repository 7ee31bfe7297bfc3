"""``kubeserve manifests``: write (or check) the kustomize base manifests/ from the chart.

Like ``kubeserve crds``, the output is committed and checked: ``--check`` writes nothing
and exits 1 naming the stale files, and tests/chart does the same against a fresh
``helm template``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kubeserve.chart.helm import NAMESPACE, HelmError, find_helm, template
from kubeserve.chart.manifests import render_base, stale_files, write_base


def expected_files(chart: Path, helm: str | None = None) -> dict[str, str]:
    """Render the chart with default values into the kustomize base's files."""
    rendered = template(find_helm(helm), chart, namespace=NAMESPACE, include_crds=True)
    return render_base(rendered, NAMESPACE)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `manifests` subcommand."""
    parser = sub.add_parser(
        "manifests", help="generate the kustomize base manifests/ from the Helm chart"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("."),
        help="repository root, which is the chart (default: current dir)",
    )
    parser.add_argument("--helm", default=None, help="helm binary (default: the pinned build)")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a file is stale"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write or check manifests/."""
    root: Path = args.root
    if not (root / "Chart.yaml").is_file():
        print(f"error: {root} has no Chart.yaml (pass --root REPO)", file=sys.stderr)
        return 2
    try:
        files = expected_files(root, args.helm)
    except HelmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    directory = root / "manifests"
    if args.check:
        stale = stale_files(directory, files)
        for name in stale:
            print(f"stale: {directory / name} (run `kubeserve manifests`)", file=sys.stderr)
        return 1 if stale else 0
    for name in write_base(directory, files):
        print(f"wrote {directory / name}")
    return 0
