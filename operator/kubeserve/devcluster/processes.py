"""Start, find and stop the control plane's processes, by pid, with logs on disk.

Each process runs in its own session (so closing a terminal or ending a test run does
not signal it by accident) and writes stdout+stderr to ``logs/<name>.log``. A recorded
pid is only trusted while ``/proc/<pid>/stat`` still names the binary we started, so a
recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

# Popen objects of children started by this interpreter, kept so they can be reaped
# (and so none is garbage-collected while its process still runs).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Process:
    """A started component: its name, pid, command line, log file and health URL."""

    name: str
    pid: int
    argv: tuple[str, ...]
    log: str
    health: str

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Process:
        """Build from :meth:`to_json` output."""
        return cls(
            name=data["name"],
            pid=int(data["pid"]),
            argv=tuple(data["argv"]),
            log=data["log"],
            health=data["health"],
        )


def start(
    name: str, argv: list[str], log: Path, health: str, env: dict[str, str] | None = None
) -> Process:
    """Start ``argv`` detached, logging to ``log`` (``env`` added to ours); return its record."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        child = subprocess.Popen(
            argv,
            env={**os.environ, **env} if env else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _CHILDREN[child.pid] = child
    return Process(name, child.pid, tuple(argv), str(log), health)


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is a child of this process (no zombie left)."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def is_running(proc: Process) -> bool:
    """Return whether the recorded process still runs (and is still the same program)."""
    _reap(proc.pid)
    try:
        stat = (Path("/proc") / str(proc.pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # stat is "pid (comm) state ...": comm is the executable's name cut to 15 bytes.
    comm, _, rest = stat.partition(" (")[2].rpartition(") ")
    state = rest.split()[0] if rest else "Z"
    return state != "Z" and comm == Path(proc.argv[0]).name[:15]


def wait_stopped(proc: Process, timeout: float) -> bool:
    """Return True once ``proc`` has exited, False if it still runs after ``timeout`` s."""
    waiter = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(0.1),
        retry=retry_if_result(lambda stopped: not stopped),
        retry_error_callback=lambda _: False,
    )
    return bool(waiter(lambda: not is_running(proc)))


def _signal(proc: Process, sig: signal.Signals) -> None:
    """Send ``sig`` to ``proc`` if it still runs."""
    if is_running(proc):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def stop_all(procs: list[Process], grace: float = 10.0) -> list[str]:
    """Stop processes one by one in the given order; return the names that were running.

    Each gets SIGTERM and ``grace`` seconds before SIGKILL. Order matters: stopping
    clients before the API server, and the API server before etcd, lets each exit at
    once instead of retrying a dead dependency until its grace period ends.
    """
    stopped = []
    for proc in procs:
        if not is_running(proc):
            continue
        stopped.append(proc.name)
        _signal(proc, signal.SIGTERM)
        if not wait_stopped(proc, grace):
            _signal(proc, signal.SIGKILL)
            wait_stopped(proc, 5.0)
        child = _CHILDREN.pop(proc.pid, None)
        if child is not None:  # a killed multi-threaded process is reaped a bit later
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5.0)
    return stopped


def stop(proc: Process, grace: float = 10.0) -> None:
    """Stop one process: SIGTERM, then SIGKILL after ``grace`` seconds."""
    stop_all([proc], grace)


def log_tail(path: str | Path, lines: int = 20) -> str:
    """Return the last ``lines`` lines of a log file ('' if there is none)."""
    try:
        with Path(path).open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
