"""The ``kubeserve-runtime`` command line: the entry point of the serving image.

Each subcommand is registered by a function in ``_registrars()`` and imports its heavy
modules only when run, so ``--version`` stays instant. ``serve`` flags override the
``KUBESERVE_*`` environment variables of the same meaning.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kubeserve_runtime import __version__

Handler = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

# flag -> (settings field, type, help); every flag defaults to None = "use the env/default"
SERVE_FLAGS: list[tuple[str, str, type, str]] = [
    ("--model-dir", "model_dir", Path, "model directory (KUBESERVE_MODEL_DIR, /mnt/models)"),
    ("--model-name", "model_name", str, "name the model is served under (KUBESERVE_MODEL_NAME)"),
    ("--model-version", "model_version", str, "model version / revision (KUBESERVE_MODEL_VERSION)"),
    (
        "--format",
        "model_format",
        str,
        "onnx|sklearn|xgboost|lightgbm|pytorch|custom; detected when unset",
    ),
    ("--host", "host", str, "bind address (KUBESERVE_HOST, 0.0.0.0)"),
    ("--http-port", "http_port", int, "REST port (KUBESERVE_HTTP_PORT, 8080)"),
    ("--grpc-port", "grpc_port", int, "gRPC port, 0 disables (KUBESERVE_GRPC_PORT, 8081)"),
    ("--metrics-port", "metrics_port", int, "Prometheus port (KUBESERVE_METRICS_PORT, 8082)"),
    (
        "--max-batch-size",
        "max_batch_size",
        int,
        "rows per batch, 1 = off (KUBESERVE_MAX_BATCH_SIZE)",
    ),
    (
        "--max-latency-ms",
        "max_latency_ms",
        float,
        "longest wait to fill a batch (KUBESERVE_MAX_LATENCY_MS)",
    ),
    ("--input-schema", "input_schema", str, "inputSchema as JSON (KUBESERVE_INPUT_SCHEMA)"),
    (
        "--auth-token-file",
        "auth_token_file",
        Path,
        "bearer tokens, one per line (KUBESERVE_AUTH_TOKEN_FILE)",
    ),
    (
        "--max-request-bytes",
        "max_request_bytes",
        int,
        "body size limit (KUBESERVE_MAX_REQUEST_BYTES)",
    ),
    ("--max-queue", "max_queue", int, "requests allowed to wait (KUBESERVE_MAX_QUEUE)"),
    (
        "--log-sample-rate",
        "log_sample_rate",
        float,
        "share of requests logged (KUBESERVE_LOG_SAMPLE_RATE)",
    ),
]


def _register_serve(sub: SubParsers) -> None:
    """Add the ``serve`` subcommand."""
    parser = sub.add_parser("serve", help="serve a model over REST, gRPC and metrics ports")
    for flag, dest, kind, text in SERVE_FLAGS:
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=text)
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    """Build settings from env + flags and run the server."""
    from pydantic import ValidationError

    from kubeserve_runtime.server import serve
    from kubeserve_runtime.settings import RuntimeSettings

    overrides = {dest: getattr(args, dest) for _, dest, _, _ in SERVE_FLAGS}
    try:
        settings = RuntimeSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        print(f"kubeserve-runtime serve: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    return serve(settings)


def _registrars() -> list[Callable[[SubParsers], None]]:
    """Return the functions that add each feature's subcommands."""
    from kubeserve_runtime.storage.command import register as register_download

    return [_register_serve, register_download]


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
