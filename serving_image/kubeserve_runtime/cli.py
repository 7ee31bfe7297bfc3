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

from kubeserve_runtime import __version__, contract

Handler = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

# (flag, settings field, type); every flag defaults to None = "use the env/default". The
# help text (meaning, env variable, default) comes from the settings field when --help is
# printed, so importing the settings does not slow down every other command.
SERVE_FLAGS: list[tuple[str, str, type]] = [
    ("--model-dir", "model_dir", Path),
    ("--model-name", "model_name", str),
    ("--model-version", "model_version", str),
    ("--format", "model_format", str),
    ("--host", "host", str),
    ("--http-port", "http_port", int),
    ("--grpc-port", "grpc_port", int),
    ("--metrics-port", "metrics_port", int),
    ("--max-batch-size", "max_batch_size", int),
    ("--max-latency-ms", "max_latency_ms", float),
    ("--input-schema", "input_schema", str),
    ("--auth-token-file", "auth_token_file", Path),
    ("--auth-mode", "auth_mode", str),
    ("--auth-audience", "auth_audience", str),
    ("--auth-issuer", "auth_issuer", str),
    ("--auth-discovery-url", "auth_discovery_url", str),
    ("--auth-jwks-url", "auth_jwks_url", str),
    ("--auth-ca-file", "auth_ca_file", Path),
    ("--auth-fetch-token-file", "auth_fetch_token_file", Path),
    ("--auth-allow", "auth_allow", str),
    ("--auth-required-claims", "auth_required_claims", str),
    ("--auth-jwks-min-refresh-seconds", "auth_jwks_min_refresh_seconds", float),
    ("--tls-cert-file", "tls_cert_file", Path),
    ("--tls-key-file", "tls_key_file", Path),
    ("--tls-client-ca-file", "tls_client_ca_file", Path),
    ("--tls-reload-seconds", "tls_reload_seconds", float),
    ("--max-request-bytes", "max_request_bytes", int),
    ("--max-inflight-bytes", "max_inflight_bytes", int),
    ("--max-concurrent-requests", "max_concurrent_requests", int),
    ("--max-connections", "max_connections", int),
    ("--max-header-bytes", "max_header_bytes", int),
    ("--max-header-count", "max_header_count", int),
    ("--request-read-timeout-seconds", "request_read_timeout_seconds", float),
    ("--parse-worker-min-bytes", "parse_worker_min_bytes", int),
    ("--max-queue", "max_queue", int),
    ("--log-sample-rate", "log_sample_rate", float),
    ("--inference-threads", "inference_threads", int),
    ("--inline-inference-max-ms", "inline_inference_max_ms", float),
    ("--shutdown-delay-seconds", "shutdown_delay_seconds", float),
    ("--drain-timeout-seconds", "drain_timeout_seconds", float),
    ("--feedback-key-file", "feedback_key_file", Path),
    ("--feedback-token-ttl-seconds", "feedback_token_ttl_seconds", float),
    ("--feedback-task", "feedback_task", str),
    ("--feedback-max-values", "feedback_max_values", int),
    ("--feedback-max-classes", "feedback_max_classes", int),
    ("--feedback-seen-capacity", "feedback_seen_capacity", int),
    ("--namespace", "namespace", str),
    ("--component", "component", str),
    ("--payload-logger", "payload_logger", str),
]


def setting_help(dest: str) -> str:
    """Return a serve flag's help: the setting's meaning, its env variable and default."""
    from kubeserve_runtime.settings import RuntimeSettings

    field = RuntimeSettings.model_fields[dest]
    env = contract.env_name(dest)
    if field.is_required():
        default = "required"
    elif field.default_factory is not None:
        default = "default: computed"
    elif field.default is None:
        default = "default: unset"
    else:
        default = f"default: {field.default}"
    return f"{field.description} ({env}; {default})"


class _SettingsHelpFormatter(argparse.HelpFormatter):
    """Fills each serve flag's help from its settings field, only when help is shown."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.dest in _SERVE_DESTS:
            return setting_help(action.dest)
        return action.help


_SERVE_DESTS = frozenset(dest for _, dest, _ in SERVE_FLAGS)


def _register_serve(sub: SubParsers) -> None:
    """Add the ``serve`` subcommand."""
    parser = sub.add_parser(
        contract.SERVE,
        help="serve a model over REST, gRPC and metrics ports",
        description="Serve a model. Every flag overrides the KUBESERVE_* variable named "
        "in its help.",
        formatter_class=_SettingsHelpFormatter,
    )
    for flag, dest, kind in SERVE_FLAGS:
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=dest)
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    """Build settings from env + flags and run the server."""
    from pydantic import ValidationError

    from kubeserve_runtime.server import serve
    from kubeserve_runtime.settings import RuntimeSettings
    from kubeserve_runtime.tls import TlsError

    overrides = {dest: getattr(args, dest) for _, dest, _ in SERVE_FLAGS}
    try:
        settings = RuntimeSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        print(f"kubeserve-runtime serve: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    try:
        return serve(settings)
    except TlsError as exc:
        print(f"kubeserve-runtime serve: TLS: {exc}", file=sys.stderr)
        return 2


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
