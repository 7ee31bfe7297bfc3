"""The ``kubeserve-runtime`` command line: the entry point of the serving image."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from kubeserve_runtime import __version__


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the serving runtime."""
    parser = argparse.ArgumentParser(
        prog="kubeserve-runtime", description="kubeserve serving runtime."
    )
    parser.add_argument("--version", action="version", version=f"kubeserve-runtime {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _registrars():
        register(sub)
    return parser


def _registrars() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    """Return the functions that add each feature's subcommands (imported lazily)."""
    from kubeserve_runtime.storage.command import register as register_download

    return [register_download]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
