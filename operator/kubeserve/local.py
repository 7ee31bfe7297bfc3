"""``kubeserve local -f isvc.yaml``: run an InferenceService's predictors on this machine.

No cluster needed. The file is validated and rendered exactly as ``kubeserve render``
does (same API models, same rollout decision, same builders), and each predictor
Deployment of the result becomes one local ``kubeserve-runtime serve`` process:

- the model is fetched with the Deployment's storage-initializer arguments
  (``kubeserve-runtime download URI DIR``) into a work folder, unless ``--model-dir``
  points at a ready folder; ``--model-uri`` replaces the storageUri (e.g. ``file://``);
- the runtime gets the serving container's arguments and literal environment, so the
  settings are the pod's (one source of truth: the builders). Only what cannot be the
  same outside a pod is replaced: the model folder, the ports, the bind address
  (127.0.0.1), the bearer-token file (``--auth-token-file``); variables that come from
  Secrets or ConfigMaps (``valueFrom``) are left out with a note. ``KUBESERVE_*``
  variables of the calling shell are not inherited, so they cannot change the settings.
- ports: component *i* (the main predictor first, then the variants in spec order) gets
  REST ``PORT+3i``, gRPC ``PORT+3i+1`` and metrics ``PORT+3i+2``, so the first one has
  the pod's 8080/8081/8082; ``--port 0`` picks free ports instead.

There is no local router: traffic weights and header matches apply in the cluster; each
component prints its own URL. Ctrl-C or SIGTERM stops the runtimes (they drain
in-flight requests) and removes the temporary work folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from kubeserve.render import RenderError

MAIN_COMPONENT = "predictor"
LABEL_VARIANT = "serving.kubeserve.io/variant"
LABEL_REVISION = "serving.kubeserve.io/revision"
RUNTIME_CONTAINER = "kserve-container"
INITIALIZER_CONTAINER = "storage-initializer"
PORT_VARS = ("KUBESERVE_HTTP_PORT", "KUBESERVE_GRPC_PORT", "KUBESERVE_METRICS_PORT")
READY_TIMEOUT = 180.0
STOP_TIMEOUT = 40.0
"""Longer than the runtime's 30 s drain of in-flight requests."""
_COMPONENT_PREFIX = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)=(.+)$")
SERVING_LINE = re.compile(r"serving (\S+) at (http://\S+)")
"""The line `kubeserve local` prints per ready component; LocalProcess parses it."""
READY_END = "Ctrl-C stops everything."
"""The last line of the ready message."""


class LocalError(RuntimeError):
    """kubeserve local cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Predictor:
    """One predictor Deployment of the rendered InferenceService, as a local process."""

    component: str
    revision: str
    deployment: str
    storage_uri: str
    download_args: tuple[str, ...]
    """The storage initializer's arguments: ``download URI DIR [--link]``."""
    serve_args: tuple[str, ...]
    """The runtime container's arguments (``serve``)."""
    env: Mapping[str, str]
    """The runtime container's literal environment."""
    skipped_env: tuple[str, ...] = ()
    """Variables set from Secrets/ConfigMaps in the pod; unknown here."""
    routing: str = ""
    """How the cluster routes traffic to it, for the printout."""

    @property
    def model_name(self) -> str:
        """The name clients use in URLs."""
        return self.env.get("KUBESERVE_MODEL_NAME", "")


@dataclass(frozen=True)
class Ports:
    """REST, gRPC and metrics ports of one process."""

    http: int
    grpc: int
    metrics: int


@dataclass
class Running:
    """A started runtime process."""

    predictor: Predictor
    ports: Ports
    process: subprocess.Popen[bytes]
    log: Path
    host: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Base URL of the REST port."""
        return f"http://{self.host}:{self.ports.http}"


def _routing(spec: Mapping[str, Any], component: str) -> str:
    """A sentence on how the cluster sends traffic to one component."""
    variants = spec.get("variants") or []
    if component == MAIN_COMPONENT:
        share = 100 - sum(int(v.get("weight", 0)) for v in variants)
        return f"{share}% of traffic" if variants else "all traffic"
    for variant in variants:
        if variant["name"] == component:
            parts = [f"{variant.get('weight', 0)}% of traffic"]
            headers = (variant.get("match") or {}).get("headers") or {}
            parts += [f"requests with header {k}: {v}" for k, v in sorted(headers.items())]
            if (spec.get("mirror") or {}).get("variant") == component:
                parts.append(f"a {spec['mirror'].get('percent', 100)}% mirror")
            return ", ".join(parts)
    return ""


def load(path: str, name: str | None = None) -> dict[str, Any]:
    """The one InferenceService of a file (or the one called `name`)."""
    from kubeserve.render import documents

    try:
        with open(path, encoding="utf-8") as stream:
            objs = list(documents(stream, path))
    except OSError as exc:
        raise LocalError(f"{path}: {exc.strerror}") from exc
    if name is not None:
        objs = [o for o in objs if (o.get("metadata") or {}).get("name") == name]
        if not objs:
            raise LocalError(f"{path}: no InferenceService named {name!r}")
    if len(objs) > 1:
        names = ", ".join(str((o.get("metadata") or {}).get("name")) for o in objs)
        raise LocalError(f"{path} holds {len(objs)} InferenceServices ({names}); pick one: --name")
    return objs[0]


def predictors(obj: Mapping[str, Any]) -> list[Predictor]:
    """The predictors the operator would run for `obj`, from its rendered Deployments."""
    from kubeserve.config import OperatorConfig
    from kubeserve.render import render_object

    children = render_object(obj, OperatorConfig(), dt.datetime.now(dt.UTC))
    spec = obj["spec"]
    order = [MAIN_COMPONENT] + [v["name"] for v in spec.get("variants") or []]
    found: list[Predictor] = []
    for child in children:
        if child["kind"] != "Deployment" or child["spec"].get("replicas", 1) == 0:
            continue
        labels = child["metadata"]["labels"]
        component = labels[LABEL_VARIANT]
        pod = child["spec"]["template"]["spec"]
        containers = {c["name"]: c for c in pod["containers"]}
        inits = {c["name"]: c for c in pod.get("initContainers", [])}
        if RUNTIME_CONTAINER not in containers or INITIALIZER_CONTAINER not in inits:
            raise LocalError(
                f"{component} runs its own container image, not a model; "
                "kubeserve local runs only predictors with spec.model"
            )
        runtime = containers[RUNTIME_CONTAINER]
        env = {e["name"]: e["value"] for e in runtime.get("env", []) if "value" in e}
        skipped = tuple(e["name"] for e in runtime.get("env", []) if "value" not in e)
        download = tuple(inits[INITIALIZER_CONTAINER]["args"])
        found.append(
            Predictor(
                component=component,
                revision=labels[LABEL_REVISION],
                deployment=child["metadata"]["name"],
                storage_uri=download[1],
                download_args=download,
                serve_args=tuple(runtime["args"]),
                env=env,
                skipped_env=skipped,
                routing=_routing(spec, component),
            )
        )
    return sorted(found, key=lambda p: order.index(p.component))


def parse_overrides(
    values: Sequence[str] | None, what: str, known: Sequence[str]
) -> dict[str, str]:
    """``[COMPONENT=]VALUE`` flags as {component: value}; no prefix = the main predictor."""
    out: dict[str, str] = {}
    for value in values or ():
        match = _COMPONENT_PREFIX.match(value)
        component, item = (
            (match.group(1), match.group(3))
            if match and match.group(1) in known
            else (MAIN_COMPONENT, value)
        )
        if component in out:
            raise LocalError(f"{what} given twice for {component}")
        out[component] = item
    return out


def port_plan(count: int, base: int) -> list[Ports]:
    """Consecutive port triples from `base`, or free ports everywhere when `base` is 0."""
    if base == 0:
        return [Ports(_free_port(), _free_port(), _free_port()) for _ in range(count)]
    if base + 3 * count - 1 > 65535:
        raise LocalError(f"--port {base} leaves no room for {count * 3} ports")
    return [Ports(base + 3 * i, base + 3 * i + 1, base + 3 * i + 2) for i in range(count)]


def runtime_env(
    predictor: Predictor,
    model_dir: Path,
    ports: Ports,
    host: str,
    auth_token_file: Path | None,
    base: Mapping[str, str],
) -> dict[str, str]:
    """The process environment: the caller's without KUBESERVE_*, plus the pod's settings."""
    env = {k: v for k, v in base.items() if not k.startswith("KUBESERVE_")}
    env.update(predictor.env)
    env["KUBESERVE_MODEL_DIR"] = str(model_dir)
    for var, port in zip(PORT_VARS, (ports.http, ports.grpc, ports.metrics), strict=True):
        env[var] = str(port)
    env["KUBESERVE_HOST"] = host
    if "KUBESERVE_AUTH_TOKEN_FILE" in predictor.env:
        if auth_token_file is None:
            raise LocalError(
                "this InferenceService requires bearer tokens (spec.auth); pass "
                "--auth-token-file FILE (one token per line, like the Secret's `tokens` key)"
            )
        env["KUBESERVE_AUTH_TOKEN_FILE"] = str(auth_token_file)
    return env


def download_argv(predictor: Predictor, uri: str, dest: Path) -> list[str]:
    """The storage initializer's command with the local URI and destination."""
    if urlsplit(uri).scheme == "pvc":
        raise LocalError(
            f"{predictor.component}: {uri} is a PersistentVolumeClaim, not reachable outside "
            "the cluster; pass --model-dir or --model-uri file://..."
        )
    args = [a for a in predictor.download_args if a != "--link"]
    args[1], args[2] = uri, str(dest)
    return [sys.executable, "-m", "kubeserve_runtime.cli", *args]


def sample_requests(url: str, model: str, metadata: Mapping[str, Any]) -> list[str]:
    """curl commands for a first prediction, shaped by the model's V2 metadata."""
    lines = [f"curl -s {url}/v2/models/{model}"]
    inputs = metadata.get("inputs") or []
    if len(inputs) != 1:
        return lines
    spec = inputs[0]
    shape = [int(d) for d in spec.get("shape") or []]
    if len(shape) != 2 or shape[1] < 1:
        return lines
    row = [1.0] * shape[1]
    body = {
        "inputs": [
            {
                "name": spec["name"],
                "shape": [1, shape[1]],
                "datatype": spec["datatype"],
                "data": row,
            }
        ]
    }
    lines.append(
        f"curl -s {url}/v2/models/{model}/infer -H 'content-type: application/json' "
        f"-d {shlex.quote(json.dumps(body))}"
    )
    v1 = json.dumps({"instances": [row]})
    lines.append(f"curl -s {url}/v1/models/{model}:predict -d {shlex.quote(v1)}")
    return lines


def _free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check_free(host: str, port: int) -> None:
    """Raise LocalError when `port` is taken on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise LocalError(
                f"port {port} on {host} is not available ({exc.strerror}); "
                "pass --port N for another range, or --port 0 for free ports"
            ) from exc


def _log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file."""
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


class Session:
    """Downloads, starts, watches and stops the local runtimes of one InferenceService."""

    def __init__(self, work_dir: Path, host: str) -> None:
        self.work_dir = work_dir
        self.host = host
        self.running: list[Running] = []
        self.stop_requested = threading.Event()

    def fetch(self, predictor: Predictor, uri: str) -> Path:
        """Download `uri` like the init container does; return the model folder."""
        dest = self.work_dir / predictor.deployment / "model"
        argv = download_argv(predictor, uri, dest)
        say(f"{predictor.component}: downloading {uri} -> {dest}")
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalError(
                f"{predictor.component}: download failed: "
                f"{(result.stderr or result.stdout).strip()}"
            )
        return dest

    def start(self, predictor: Predictor, env: dict[str, str], ports: Ports) -> Running:
        """Start one runtime with the pod's arguments and `env`; its log goes to a file."""
        for port in (ports.http, ports.grpc, ports.metrics):
            _check_free(self.host, port)
        log = self.work_dir / f"{predictor.deployment}.log"
        argv = [sys.executable, "-m", "kubeserve_runtime.cli", *predictor.serve_args]
        with log.open("ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        running = Running(predictor, ports, process, log, self.host)
        self.running.append(running)
        return running

    def wait_ready(self, running: Running, timeout: float = READY_TIMEOUT) -> None:
        """Poll /v2/health/ready until 200; fail with the log tail if the process exits."""
        import httpx

        deadline = time.monotonic() + timeout
        ready = f"{running.url}/v2/health/ready"
        with httpx.Client(timeout=2.0) as client:
            while not self.stop_requested.is_set():
                if running.process.poll() is not None:
                    raise LocalError(
                        f"{running.predictor.component}: runtime exited with "
                        f"{running.process.returncode}; last lines of {running.log}:\n"
                        f"{_log_tail(running.log)}"
                    )
                try:
                    if client.get(ready).status_code == 200:
                        meta = client.get(f"{running.url}/v2/models/{running.predictor.model_name}")
                        running.metadata = meta.json() if meta.status_code == 200 else {}
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise LocalError(
                        f"{running.predictor.component}: not ready after {timeout:.0f}s; "
                        f"last lines of {running.log}:\n{_log_tail(running.log)}"
                    )
                self.stop_requested.wait(0.1)

    def watch(self) -> int:
        """Block until a stop is requested (0) or a runtime exits on its own (1)."""
        while not self.stop_requested.wait(0.5):
            for running in self.running:
                if running.process.poll() is not None:
                    say(
                        f"{running.predictor.component}: runtime exited with "
                        f"{running.process.returncode}; last lines of {running.log}:\n"
                        f"{_log_tail(running.log)}"
                    )
                    return 1
        return 0

    def stop(self) -> None:
        """SIGTERM every runtime (they drain), SIGKILL what is left after the timeout."""
        for running in self.running:
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for running in self.running:
            try:
                running.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()


def say(message: str) -> None:
    """Progress to stdout, flushed at once (callers read it line by line)."""
    print(f"kubeserve local: {message}", flush=True)


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
        default=8080,
        help="first port: component i gets REST PORT+3i, gRPC +1, metrics +2 (default 8080; "
        "0 = free ports)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--auth-token-file", type=Path, help="bearer tokens, when spec.auth is set")
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep downloads and logs here (default: a temporary folder removed on exit)",
    )
    parser.set_defaults(handler=run)


def _install_signal_handlers(stop: threading.Event) -> None:
    """SIGINT and SIGTERM request a clean stop."""

    def handle(signum: int, _: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def run(args: argparse.Namespace) -> int:
    """Run the predictors until Ctrl-C/SIGTERM; errors are one message and exit 1."""
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        return _run(args, args.work_dir.resolve())
    with tempfile.TemporaryDirectory(prefix="kubeserve-local-") as tmp:
        return _run(args, Path(tmp))


def _run(args: argparse.Namespace, work_dir: Path) -> int:
    """Body of `run` with a work folder."""
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
                model_dir = session.fetch(predictor, uri)
            env = runtime_env(
                predictor, model_dir, ports, args.host, args.auth_token_file, os.environ
            )
            running = session.start(predictor, env, ports)
            say(f"{predictor.component}: revision {predictor.revision} starting, log {running.log}")
            session.wait_ready(running)
        if session.stop_requested.is_set():
            return 0
        _print_ready(name, session.running)
        return session.watch()
    except (LocalError, RenderError) as exc:
        print(f"kubeserve local: error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        session.stop()
        if session.running:
            say("stopped")


def _print_ready(name: str, running: Sequence[Running]) -> None:
    """The URLs, how the cluster would route to each, and sample requests."""
    say(f"{name} is ready")
    for item in running:
        p = item.predictor
        print(
            f"  serving {p.component} at {item.url}  (gRPC {item.host}:{item.ports.grpc}, "
            f"metrics http://{item.host}:{item.ports.metrics}/metrics; in the cluster: "
            f"{p.routing})",
            flush=True,
        )
    print("Try:", flush=True)
    for item in running:
        for line in sample_requests(item.url, item.predictor.model_name, item.metadata):
            print(f"  {line}", flush=True)
    print(READY_END, flush=True)


class LocalProcess:
    """``kubeserve local`` as a subprocess (the demo, tests): its stdout read line by line.

    Each line is kept in ``output`` and passed to ``echo`` as it arrives; ``urls`` waits
    for the "serving COMPONENT at URL" lines; ``stop`` sends SIGTERM and waits.
    """

    def __init__(self, *args: str, echo: Callable[[str], None] | None = None) -> None:
        self.output: list[str] = []
        self._echo = echo
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kubeserve.cli", "local", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """Copy stdout lines into the queue; None marks the end."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _take(self, timeout: float) -> str | None:
        """The next line (recorded and echoed); None at the end of the output."""
        line = self._lines.get(timeout=timeout)
        if line is not None:
            self.output.append(line)
            if self._echo is not None:
                self._echo(line)
        return line

    def urls(self, count: int, timeout: float = READY_TIMEOUT) -> dict[str, str]:
        """Wait for the ready message naming `count` components; return {component: URL}."""
        found: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        line: str | None = ""
        while len(found) < count or line != READY_END:
            try:
                line = self._take(max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(
                    f"kubeserve local not ready after {timeout:.0f}s:\n" + "\n".join(self.output)
                ) from None
            if line is None:
                raise LocalError(
                    f"kubeserve local exited with {self.process.wait()}:\n" + "\n".join(self.output)
                )
            if match := SERVING_LINE.search(line):
                found[match.group(1)] = match.group(2)
        return found

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, wait, collect the rest of the output; return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(10)
        while not self._lines.empty():
            self._take(0)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code
