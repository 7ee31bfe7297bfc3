"""The ``kubeserve-runtime download URI DIR`` subcommand (the init container)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kubeserve_runtime import contract
from kubeserve_runtime.storage.downloader import download
from kubeserve_runtime.storage.errors import StorageError
from kubeserve_runtime.storage.options import PVC_ROOT_ENV, DownloadOptions
from kubeserve_runtime.storage.redaction import RedactingFilter


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``download`` subcommand."""
    parser = sub.add_parser(
        contract.DOWNLOAD,
        help="download a model from s3://, gs://, https://, pvc:// or file:// into DIR",
        description=(
            "Fetch URI into DIR, verifying an optional #sha256=HEX fragment and a SHA256SUMS "
            "file, unpacking .zip/.tar(.gz) archives. On error nothing is left in DIR."
        ),
    )
    parser.add_argument("uri", metavar="URI")
    parser.add_argument("dest", metavar="DIR", type=Path)
    parser.add_argument(
        contract.LINK_FLAG,
        action="store_true",
        help="symlink file:// and pvc:// sources instead of copying them",
    )
    parser.add_argument(
        "--pvc-root",
        type=Path,
        default=None,
        help=f"where PVCs are mounted (default: ${PVC_ROOT_ENV} or {contract.PVC_ROOT})",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run a download; print one line on stderr and return 1 on failure.

    Every log line goes through ``RedactingFilter``: httpx logs each request's full URL,
    presigned query included.
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    try:
        options = DownloadOptions.from_environment(link=args.link, pvc_root=args.pvc_root)
    except ValueError as exc:
        print(f"kubeserve-runtime download: error: {exc}", file=sys.stderr)
        return 1
    try:
        download(args.uri, args.dest, options)
    except StorageError as exc:
        print(f"kubeserve-runtime download: error: {exc}", file=sys.stderr)
        return 1
    return 0
