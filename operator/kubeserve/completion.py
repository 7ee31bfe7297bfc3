"""Shell completion of ``kubeserve`` and ``kubectl kubeserve``, through argcomplete.

Limits first: completion comes from the argparse parser, so it knows every subcommand
and option; values are completed only where argparse knows them (choices) and as file
names elsewhere. Building the parser imports each feature's ``register``, so a TAB costs
one interpreter start plus those imports (well under a second).

- ``kubeserve completion bash|zsh`` prints the script to source (argcomplete's, for both
  ``kubeserve`` and ``kubectl-kubeserve``).
- ``kubectl kubeserve <TAB>``: kubectl (1.26+) runs the executable
  ``kubectl_complete-kubeserve`` with the words typed after the plugin name (the last
  one the word being completed) and reads one completion per line: that executable is
  :func:`kubectl_complete`, a console script, which asks argcomplete through its own
  protocol (``COMP_LINE``/``COMP_POINT``).
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import argcomplete
from argcomplete.shell_integration import shellcode

EXECUTABLES = ("kubeserve", "kubectl-kubeserve")
"""The console scripts that run :func:`kubeserve.cli.main` (pyproject [project.scripts])."""

SHELLS = ("bash", "zsh")


def prog_name(argv0: str) -> str:
    """``kubectl kubeserve`` when run as the kubectl plugin, else ``kubeserve``."""
    return "kubectl kubeserve" if Path(argv0).name.startswith("kubectl-") else "kubeserve"


def completion_line(words: Sequence[str]) -> str:
    """The command line argcomplete completes: ``kubeserve`` and the words so far.

    The last word is the one being completed; it stays unquoted so that its prefix
    matches the candidates.
    """
    *done, current = words or [""]
    return " ".join(["kubeserve", *map(shlex.quote, done), current])


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``completion bash|zsh``."""
    parser = sub.add_parser(
        "completion",
        help="print the shell completion script: source <(kubeserve completion bash)",
    )
    parser.add_argument("shell", choices=SHELLS)
    parser.set_defaults(handler=lambda args: _print_script(args.shell))


def _print_script(shell: str) -> int:
    """Print argcomplete's script for our executables."""
    print(shellcode(list(EXECUTABLES), shell=shell))
    return 0


def complete(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """Return the completions of the last of ``words`` (typed after ``kubeserve``)."""
    line = completion_line(words)
    saved = dict(os.environ)
    os.environ.update(
        {
            "_ARGCOMPLETE": "1",
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_IFS": "\n",
        }
    )
    out = io.StringIO()
    done: list[int] = []
    try:
        argcomplete.autocomplete(parser, exit_method=done.append, output_stream=out)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return [item.rstrip() for item in out.getvalue().split("\n") if item.strip()]


def kubectl_complete(
    argv: Sequence[str] | None = None,
    parser_factory: Callable[[], argparse.ArgumentParser] | None = None,
) -> int:
    """The ``kubectl_complete-kubeserve`` executable: print one completion per line."""
    from kubeserve.cli import build_parser

    parser = (parser_factory or build_parser)()
    for item in complete(parser, sys.argv[1:] if argv is None else argv):
        print(item)
    return 0
