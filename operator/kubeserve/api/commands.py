"""``kubeserve crds``: write (or check) crds/ and docs/api.md from the models.

Both files are generated, committed, and checked: ``kubeserve crds --check`` exits 1
and names the stale files, and a unit test does the same, so the CRD users install and
the reference they read can never drift from the models the operator validates with.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def generated_files(root: Path) -> dict[Path, Callable[[], str]]:
    """Return each generated file under `root` and the function that renders it."""
    from kubeserve.api.crd import CRD_FILENAME, render_crd
    from kubeserve.api.reference import render_reference

    return {
        root / "crds" / CRD_FILENAME: render_crd,
        root / "docs" / "api.md": render_reference,
    }


Generated = Callable[[Path], dict[Path, Callable[[], str]]]
"""The generated files of a tree under its root, each with the function rendering it."""


def stale_files(root: Path, generated: Generated = generated_files) -> list[Path]:
    """Return the generated files under `root` that are missing or out of date."""
    return [
        path
        for path, render in generated(root).items()
        if not path.is_file() or path.read_text(encoding="utf-8") != render()
    ]


def write_files(root: Path, generated: Generated = generated_files) -> list[Path]:
    """(Re)write every generated file under `root`; return those that changed."""
    changed = []
    for path, render in generated(root).items():
        text = render()
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        changed.append(path)
    return changed


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `crds` subcommand."""
    parser = sub.add_parser(
        "crds", help="generate crds/ and docs/api.md from the InferenceService models"
    )
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="repository root (default: current dir)"
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a file is stale"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write or check the generated files."""
    root: Path = args.root
    if args.check:
        stale = stale_files(root)
        for path in stale:
            print(f"stale: {path} (run `kubeserve crds`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_files(root):
        print(f"wrote {path}")
    return 0
