"""The ``kubeserve-runtime`` command line: the entry point of the serving image."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kubeserve_runtime import __version__


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the serving runtime."""
    parser = argparse.ArgumentParser(
        prog="kubeserve-runtime", description="kubeserve serving runtime."
    )
    parser.add_argument(
        "--version", action="version", version=f"kubeserve-runtime {__version__}"
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
