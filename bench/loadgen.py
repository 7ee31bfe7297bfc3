"""The load generator: wrk (Debian package ``wrk``), driven by a generated Lua script.

The script sets the POST body and Content-Type and, in ``done``, prints one JSON line
with wrk's own request count, error counts and latency percentiles (microseconds), so
nothing is scraped from wrk's human-readable report. wrk runs one thread: on a small
machine the load generator should not take CPU away from the server under test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

MARKER = "BENCH_RESULT "

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d}, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
    .. '"mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """One wrk run."""

    concurrency: int
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: int

    def as_dict(self) -> dict[str, float | int]:
        """JSON-ready form."""
        return asdict(self)


def wrk_binary() -> str:
    """The wrk executable, or an error saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk not found: install it with `apt-get install wrk` (Debian/Ubuntu)")
    return path


def wrk_version() -> str:
    """wrk's version line."""
    out = subprocess.run([wrk_binary(), "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def lua_script(body: bytes, path: Path) -> Path:
    """Write the Lua script for a JSON POST body."""
    text = body.decode()
    if "]==]" in text:
        raise ValueError("payload cannot be embedded in a Lua long string")
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [==[{text}]==]\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + _DONE
    )
    return path


def run_wrk(url: str, script: Path, concurrency: int, seconds: float) -> LoadResult:
    """Run wrk against url and return its measurements."""
    command = [
        wrk_binary(),
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    raw = json.loads(lines[-1][len(MARKER) :])
    duration = raw["duration_us"] / 1e6
    return LoadResult(
        concurrency=concurrency,
        requests=raw["requests"],
        duration_s=round(duration, 3),
        rps=round(raw["requests"] / duration, 1),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=round(raw["mean_us"] / 1000, 3),
        max_ms=raw["max_us"] / 1000,
        errors=sum(int(v) for v in raw["errors"].values()),
    )
