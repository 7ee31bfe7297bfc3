"""The ``kubeserve local`` subcommand: its arguments, the run, and clean stops on signals.

Limits: one InferenceService per run, in the foreground; errors are one message on
stderr and exit 1. Every ``kubeserve`` invocation imports this module to build its
parser, so the rest of the feature (the storage redaction pulls httpx) is imported when
the command runs, not here.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from kubeserve_runtime.contract import HTTP_PORT


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `local` subcommand."""
    parser = sub.add_parser(
        "local",
        help="run the predictors of an InferenceService on this machine (no cluster)",
        description="Validate an InferenceService file, fetch each predictor's model and "
        "start kubeserve-runtime with the settings the operator gives the pod.",
    )
    parser.add_argument("-f", "--filename", required=True, help="InferenceService YAML file")
    parser.add_argument("--name", help="which InferenceService, when the file holds several")
    parser.add_argument(
        "--model-uri",
        action="append",
        metavar="[COMPONENT=]URI",
        help="fetch this URI instead of storageUri (e.g. file:///path/model); COMPONENT is "
        "a variant name, default the main predictor; repeatable",
    )
    parser.add_argument(
        "--model-dir",
        action="append",
        metavar="[COMPONENT=]DIR",
        help="serve this ready model folder as is (no download); repeatable",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=HTTP_PORT,
        help="first port: component i gets REST PORT+3i, gRPC +1, metrics +2 (default "
        f"{HTTP_PORT}; "
        "0 = free ports)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--auth-token-file", type=Path, help="bearer tokens, when spec.auth is set")
    parser.add_argument(
        "--feedback-key-file",
        type=Path,
        help="feedback HMAC key(s), when spec.feedback is set (shared by every component)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep downloads and logs here (default: a temporary folder removed on exit)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the predictors until Ctrl-C/SIGTERM; errors are one message and exit 1."""
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        return _run(args, args.work_dir.resolve())
    with tempfile.TemporaryDirectory(prefix="kubeserve-local-") as tmp:
        return _run(args, Path(tmp))


def _install_signal_handlers(stop: threading.Event) -> None:
    """SIGINT and SIGTERM request a clean stop."""

    def handle(signum: int, _: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def _run(args: argparse.Namespace, work_dir: Path) -> int:
    """Body of `run` with a work folder."""
    from kubeserve.local.console import PREFIX, print_ready, say
    from kubeserve.local.errors import LocalError
    from kubeserve.local.ports import port_plan
    from kubeserve.local.predictors import load, parse_overrides, predictors
    from kubeserve.local.settings import runtime_env
    from kubeserve.local.supervisor import Session
    from kubeserve.render import RenderError
    from kubeserve_runtime.storage.redaction import redact_uri

    session = Session(work_dir, args.host)
    _install_signal_handlers(session.stop_requested)
    try:
        obj = load(args.filename, args.name)
        found = predictors(obj)
        names = [p.component for p in found]
        uris = parse_overrides(args.model_uri, "--model-uri", names)
        dirs = parse_overrides(args.model_dir, "--model-dir", names)
        if both := sorted(set(uris) & set(dirs)):
            raise LocalError(f"--model-uri and --model-dir both given for {', '.join(both)}")
        plan = port_plan(len(found), args.port)
        name = obj["metadata"]["name"]
        say(f"{args.filename}: InferenceService {name!r} is valid; {len(found)} predictor(s)")
        for predictor, ports in zip(found, plan, strict=True):
            if session.stop_requested.is_set():
                return 0
            for var in predictor.skipped_env:
                say(f"{predictor.component}: env {var} comes from a Secret/ConfigMap; left out")
            if predictor.component in dirs:
                model_dir = Path(dirs[predictor.component]).resolve()
                if not model_dir.is_dir():
                    raise LocalError(f"--model-dir {model_dir} is not a folder")
            else:
                uri = uris.get(predictor.component, predictor.storage_uri)
                shown = f"{redact_uri(uri)} -> {session.model_dir(predictor)}"
                say(f"{predictor.component}: downloading {shown}")
                model_dir = session.fetch(predictor, uri)
            env = runtime_env(
                predictor,
                model_dir,
                ports,
                args.host,
                args.auth_token_file,
                os.environ,
                args.feedback_key_file,
            )
            running = session.start(predictor, env, ports)
            say(f"{predictor.component}: revision {predictor.revision} starting, log {running.log}")
            session.wait_ready(running)
        if session.stop_requested.is_set():
            return 0
        print_ready(name, session.running)
        exited = session.watch()
        if exited is None:
            return 0
        say(exited.exit_report())
        return 1
    except (LocalError, RenderError) as exc:
        print(f"{PREFIX}error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        session.stop()
        if session.running:
            say("stopped")
