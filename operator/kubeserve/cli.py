"""The ``kubeserve`` command line.

Each subcommand lives in the module that owns its logic; this module only wires
argparse to them and imports lazily, so ``kubeserve --version`` stays instant and a
missing optional extra only matters to the subcommand that needs it.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from collections.abc import Callable, Sequence

import argcomplete

from kubeserve import __version__
from kubeserve.guard import Handler


def build_parser(prog: str = "kubeserve") -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Model serving on Kubernetes: operator, tooling and local dev cluster.",
    )
    parser.add_argument("--version", action="version", version=f"kubeserve {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("version", help="print the version and exit").set_defaults(handler=_version)
    for register in _registrars():
        register(sub)
    return parser


Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

FEATURES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("kubeserve.api.commands", "operator", ("crds",)),
    ("kubeserve.completion", "operator", ("completion",)),
    ("kubeserve.chart.commands", "dev", ("manifests",)),
    ("kubeserve.controller.run", "operator", ("run",)),
    ("kubeserve.convert.commands", "operator", ("convert",)),
    ("kubeserve.dashboard", "dev", ("dashboard",)),
    ("kubeserve.devcluster.cli", "demo", ("cluster",)),
    ("kubeserve.images.commands", "demo", ("image",)),
    ("kubeserve.local.commands", "runtime", ("local",)),
    ("kubeserve.render", "operator", ("render",)),
)
"""(module with a `register` function, the extra it needs, the subcommands it adds)."""


def _registrars() -> list[Registrar]:
    """Return the functions that add each feature's subcommands.

    A feature whose optional dependencies are not installed (the operator image has no
    `dev` extra, for one) still lists its subcommands; running one says what to install.
    """
    found: list[Registrar] = []
    for module, extra, names in FEATURES:
        try:
            found.append(importlib.import_module(module).register)
        except ImportError as exc:
            found.append(functools.partial(_unavailable, names, extra, exc))
    return found


def _unavailable(
    names: tuple[str, ...],
    extra: str,
    exc: ImportError,
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register `names` as commands that explain which extra is missing."""

    def explain(_: argparse.Namespace) -> int:
        print(
            f"kubeserve: this command needs the '{extra}' extra "
            f"(pip install 'kubeserve[{extra}]'): {exc}",
            file=sys.stderr,
        )
        return 2

    for name in names:
        parser = sub.add_parser(name, help=f"(needs: pip install 'kubeserve[{extra}]')")
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        parser.set_defaults(handler=explain)


def _version(_: argparse.Namespace) -> int:
    """Print the version."""
    print(f"kubeserve {__version__}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status."""
    from kubeserve.completion import prog_name

    parser = build_parser(prog_name(sys.argv[0]))
    argcomplete.autocomplete(parser)  # returns at once unless the shell asks to complete
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
