"""The ``kubeserve`` command line.

Each subcommand lives in the module that owns its logic; this module only wires
argparse to them and imports lazily, so ``kubeserve --version`` stays instant and a
missing optional extra only matters to the subcommand that needs it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from kubeserve import __version__

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="kubeserve",
        description="Model serving on Kubernetes: operator, tooling and local dev cluster.",
    )
    parser.add_argument("--version", action="version", version=f"kubeserve {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("version", help="print the version and exit").set_defaults(handler=_version)
    for register in _registrars():
        register(sub)
    return parser


def _registrars() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    """Return the functions that add each feature's subcommands."""
    from kubeserve import local, render
    from kubeserve.api import commands as api_commands
    from kubeserve.chart import commands as chart_commands
    from kubeserve.controller import run as controller_run
    from kubeserve.devcluster import cli as devcluster_cli

    return [
        api_commands.register,
        chart_commands.register,
        controller_run.register,
        devcluster_cli.register,
        local.register,
        render.register,
    ]


def _version(_: argparse.Namespace) -> int:
    """Print the version."""
    print(f"kubeserve {__version__}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
