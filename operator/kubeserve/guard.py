"""The shape of a ``kubeserve`` subcommand handler, and the guard that ends known failures.

A guarded handler turns the errors its command expects (a build that failed, a cluster
that is not up) into one line on stderr and exit status 1, instead of a traceback; any
other exception is a bug and still shows its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]


def guarded(command: str, handler: Handler, *known: type[Exception]) -> Handler:
    """Return ``handler`` with the ``known`` errors printed as ``kubeserve COMMAND: error``."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except known as exc:
            print(f"kubeserve {command}: {exc}", file=sys.stderr)
            return 1

    return run
