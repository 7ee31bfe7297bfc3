"""``kubeserve image build|import``: image archives for a real node, without Docker.

Thin argparse handlers over :mod:`~kubeserve.images.catalog` and
:mod:`~kubeserve.images.containerd`; known failures become one line on stderr and exit
status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kubeserve.guard import Handler, guarded
from kubeserve.images import catalog, containerd, store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``image`` command and its subcommands."""
    image = sub.add_parser(
        "image",
        help="build container image archives without Docker and import them into containerd",
        description="OCI image archives under ~/.cache/kubeserve/images/, keyed by content.",
    )
    image.set_defaults(handler=lambda _: _usage(image))
    commands = image.add_subparsers(dest="image_command", metavar="SUBCOMMAND")
    build = commands.add_parser("build", help="build images (a cached one prints 'cached')")
    build.add_argument("names", nargs="+", choices=catalog.NAMES, metavar="NAME")
    build.set_defaults(handler=_guard(_build))
    load = commands.add_parser("import", help="import images into a containerd (k8s.io namespace)")
    load.add_argument("--address", type=Path, required=True, help="containerd socket")
    load.add_argument("images", nargs="+", metavar="NAME|ARCHIVE", help="image name or tar path")
    load.set_defaults(handler=_guard(_import))


def _usage(parser: argparse.ArgumentParser) -> int:
    """Print the image command's help."""
    parser.print_help()
    return 2


def _guard(handler: Handler) -> Handler:
    """Turn known failures into one stderr message and exit status 1."""
    return guarded("image", handler, store.ImageError)


def _build(args: argparse.Namespace) -> int:
    """Build each named image and say where its archive is."""
    for name in args.names:
        built = catalog.build_image(name, log=lambda line: print(f"  {line}", file=sys.stderr))
        note = "cached" if built.cached else f"built in {built.seconds:.1f}s"
        print(f"{name:10} {note:>16}  {built.reference}  {built.path}")
        if built.steps:
            print("           " + ", ".join(f"{k} {v:.1f}s" for k, v in built.steps.items()))
    return 0


def _import(args: argparse.Namespace) -> int:
    """Import each image (by name: its current archive) into the given containerd."""
    for item in args.images:
        path = catalog.archive_of(item) if item in catalog.NAMES else Path(item)
        if not path.is_file():
            print(
                f"kubeserve image: no archive {path}; run `kubeserve image build {item}`",
                file=sys.stderr,
            )
            return 1
        for name in containerd.import_image(args.address, path):
            print(f"imported {name} from {path}")
    return 0
