"""Small-request latency and server memory while large JSON bodies arrive.

    python bench/large_bodies.py [--duration 10] [--large 0,1,2,4,8] [--mb 8]

For each runtime configuration and each N, the runtime (a real ``kubeserve-runtime
serve`` process on loopback, the iris LogisticRegression) gets N clients that each send
an ~8 MB V2 JSON body (200k rows, nested lists, as a client's ``tolist()`` gives) again
and again, while 4 other clients send one-row requests. Recorded: the small requests'
p50/p99/max, the large requests' statuses (503 = refused by admission before the body
was read), and the resident memory of the server and its parse worker (peak, sampled
every 50 ms, from /proc: Linux only). Configurations:

- ``default``: the runtime's defaults (in-flight byte budget of 2 bodies, JSON bodies
  over 256 KiB parsed in the worker process);
- ``parse on loop``: the same admission, but every body parsed on the event loop;
- ``no caps, parse on loop``: caps too high to matter and parsing on the loop - how
  the runtime behaved before admission and the worker existed.

The large-body clients run in a separate process, so their own JSON work does not delay
the small-request clients. Results: bench/results/large_bodies.{json,png}. This is a
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
SMALL_CLIENTS = 4
SAMPLE_S = 0.05
SMALL = orjson.dumps(
    {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [[5.1, 3.5, 1.4, 0.2]]}]}
)
CONFIGS: dict[str, list[str]] = {
    "default": [],
    "parse on loop": ["--parse-worker-min-bytes", "0"],
    "no caps, parse on loop": [
        "--parse-worker-min-bytes",
        "0",
        "--max-inflight-bytes",
        str(1 << 40),
        "--max-concurrent-requests",
        "100000",
    ],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per point")
    parser.add_argument("--large", default="0,1,2,4,8", help="comma-separated N")
    parser.add_argument("--mb", type=float, default=8.0, help="approximate large body size")
    parser.add_argument(
        "--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS), help="which"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where JSON and PNG go")
    return parser.parse_args(argv)


def large_body(megabytes: float) -> bytes:
    """A V2 body of about ``megabytes`` MB: iris-like rows as nested JSON lists."""
    import numpy as np

    rows = max(1, int(megabytes * 1e6 / 40))  # ~40 bytes per 4-value row
    data = np.random.default_rng(7).uniform(0, 8, (rows, 4)).round(6)
    doc = {"inputs": [{"name": "x", "shape": [rows, 4], "datatype": "FP64", "data": data.tolist()}]}
    return orjson.dumps(doc)


def make_model(directory: Path) -> Path:
    """Train the iris LogisticRegression and save it as the runtime would load it."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), directory / "model.joblib")
    return directory


def rss_mb(pid: int) -> float:
    """Resident memory of one process in MB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """The direct children of a process (the parse worker, the resource tracker)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(p) for p in text)
    return found


def large_senders(url: str, body: bytes, count: int, ready: Any, stop: Any, out: Any) -> None:
    """In a child process: ``count`` clients post ``body`` in a loop until ``stop``.

    Sets ``ready`` once its imports are done, so the probe only measures while the
    large bodies really arrive; puts the count of each status on ``out``.
    """

    async def sender(statuses: dict[str, int]) -> None:
        async with httpx.AsyncClient(timeout=120) as client:
            while not stop.is_set():
                try:
                    response = await client.post(url, content=body)
                    key = str(response.status_code)
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                statuses[key] = statuses.get(key, 0) + 1
                if key == "503":
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))

    async def main() -> dict[str, int]:
        statuses: dict[str, int] = {}
        ready.set()
        await asyncio.gather(*(sender(statuses) for _ in range(count)))
        return statuses

    out.put(asyncio.run(main()))


async def small_probe(url: str, seconds: float) -> list[float]:
    """SMALL_CLIENTS clients send one-row requests for ``seconds``; return latencies (ms)."""
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def client_loop() -> None:
        async with httpx.AsyncClient(timeout=120) as client:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                response = await client.post(url, content=SMALL)
                if response.status_code == 200:
                    latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(client_loop() for _ in range(SMALL_CLIENTS)))
    return latencies


async def sample_rss(pid: int, stop: asyncio.Event) -> dict[str, float]:
    """Peak RSS of the server and of its children until ``stop``."""
    peak_main = peak_children = 0.0
    while not stop.is_set():
        peak_main = max(peak_main, rss_mb(pid))
        peak_children = max(peak_children, sum(rss_mb(c) for c in children(pid)))
        await asyncio.sleep(SAMPLE_S)
    return {"peak_rss_mb": round(peak_main, 1), "peak_children_rss_mb": round(peak_children, 1)}


def measure_point(
    server: Any, body: bytes, count: int, seconds: float, context: Any
) -> dict[str, Any]:
    """One point: N large senders and the small probe at once."""
    url = f"{server.url}/v2/models/iris/infer"
    assert server.process is not None
    pid = server.process.pid
    baseline = rss_mb(pid)
    queue, ready, stop = context.Queue(), context.Event(), context.Event()
    senders = context.Process(target=large_senders, args=(url, body, count, ready, stop, queue))
    if count:
        senders.start()
        ready.wait(120)

    async def run() -> tuple[list[float], dict[str, float]]:
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(pid, stop))
        latencies = await small_probe(url, seconds)
        stop.set()
        return latencies, await sampler

    latencies, memory = asyncio.run(run())
    stop.set()
    statuses: dict[str, int] = queue.get(timeout=300) if count else {}
    if count:
        senders.join()
    ordered = sorted(latencies)
    return {
        "large_clients": count,
        "small_requests": len(ordered),
        "small_p50_ms": round(statistics.median(ordered), 2),
        "small_p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 2),
        "small_max_ms": round(ordered[-1], 2),
        "large_statuses": statuses,
        "baseline_rss_mb": round(baseline, 1),
        **memory,
    }


def plot(data: dict[str, Any], path: Path) -> None:
    """Small-request p99 and peak server memory against the number of large clients."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, memory) = plt.subplots(1, 2, figsize=(11, 4))
    for config, rows in data["results"].items():
        ns = [r["large_clients"] for r in rows]
        latency.plot(ns, [r["small_p99_ms"] for r in rows], marker="o", label=config)
        total = [r["peak_rss_mb"] + r["peak_children_rss_mb"] for r in rows]
        memory.plot(ns, total, marker="o", label=f"{config} (server + worker)")
    latency.set_title("p99 of one-row requests (ms)")
    latency.set_yscale("log")
    memory.set_title("peak resident memory (MB)")
    for axis in (latency, memory):
        axis.set_xlabel(f"clients sending ~{data['config']['body_mb']} MB JSON bodies")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"large bodies vs small requests — {data['machine']['cpus']} CPUs")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """Run every configuration and N; write JSON and PNG."""
    from kubeserve_runtime.testing import RuntimeProcess

    args = parse_args(argv)
    levels = [int(n) for n in args.large.split(",")]
    chosen: list[str] = args.configs
    started = time.monotonic()
    body = large_body(args.mb)
    context = multiprocessing.get_context("spawn")
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="kubeserve-large-") as work:
        model_dir = make_model(Path(work))
        for config in chosen:
            flags = ["--grpc-port", "0", "--shutdown-delay-seconds", "0", *CONFIGS[config]]
            with RuntimeProcess(model_dir, "iris", *flags, grpc=False) as server:
                asyncio.run(small_probe(f"{server.url}/v2/models/iris/infer", 1.0))  # warm-up
                results[config] = []
                for count in levels:
                    row = measure_point(server, body, count, args.duration, context)
                    results[config].append(row)
                    print(f"{config:22} N={count:<2} {json.dumps(row)}", flush=True)
    data = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
        },
        "config": {
            "body_mb": round(len(body) / 1e6, 2),
            "duration_s": args.duration,
            "small_clients": SMALL_CLIENTS,
            "configs": {c: CONFIGS[c] for c in chosen},
        },
        "results": results,
        "wall_s": round(time.monotonic() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "large_bodies.json").write_text(json.dumps(data, indent=1) + "\n")
    plot(data, args.out / "large_bodies.png")
    print(f"wrote {args.out}/large_bodies.json and large_bodies.png in {data['wall_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
