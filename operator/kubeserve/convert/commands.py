"""``kubeserve convert -f kserve-isvc.yaml``: KServe InferenceServices to kubeserve ones.

Prints the converted objects as YAML on stdout (or ``-o FILE``) and, on stderr, a report
per object naming every field that changed meaning or was not carried over, and why.
Exit status 1 when any document could not be converted (its report says why; the
others are still printed), 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from kubeserve.convert import kserve


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``convert`` subcommand."""
    parser = sub.add_parser(
        "convert",
        help="convert KServe v1beta1 InferenceServices to kubeserve ones, reporting what "
        "is not carried over",
    )
    parser.add_argument(
        "-f", "--filename", required=True, help="KServe YAML (one or more documents), - for stdin"
    )
    parser.add_argument("-o", "--output", type=Path, help="write the YAML here (default stdout)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Convert every document of the file."""
    text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text()
    documents = [doc for doc in yaml.safe_load_all(text) if doc]
    conversions = [kserve.convert(doc) for doc in documents]
    results = [c.result for c in conversions if c.result is not None]
    out = yaml.safe_dump_all(results, sort_keys=False) if results else ""
    if args.output:
        args.output.write_text(out)
    else:
        sys.stdout.write(out)
    for conversion in conversions:
        print(conversion.report(), file=sys.stderr)
    return 0 if len(results) == len(conversions) and conversions else 1
