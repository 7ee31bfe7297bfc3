"""What payload logging costs the predict path: off, to a live HTTP sink, to a dead one.

    python bench/payloadlog.py [--duration 10] [--concurrency 1,64] [--rounds 1]

One run trains the scikit-learn model (bench/models.py) and, in each round, starts the
kubeserve runtime four times on loopback (batching off, the same V2 JSON request as
bench/runtime.py): with no payload logger; logging every request and response
(``sampleRate`` 1, mode all) to a live CloudEvents receiver process (the test
receiver, ``kubeserve_runtime.testing.CloudEventsReceiver``, which parses every event
with the cloudevents SDK) in binary mode (one POST per event, as KServe sends them) and
in batch mode (``batchSize`` 100); and in binary mode to a URL where nothing listens.
wrk drives each at every concurrency. After each point the runtime's payload metrics
are scraped, so the JSON shows how many events were sent or dropped (and why) beside
the throughput and p99. The receiver runs on the same machine: on a small one its CPU
is taken from the server under test, so the live-sink figures are an upper bound.
Results: bench/results/payloadlog.json and a Markdown table on stdout. The goal (issue
12) is under 10% throughput cost with logging to a live sink. A benchmark, not a test:
nothing here runs in ``make test``; on a loaded machine the figures are noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from kubeserve_runtime.testing import CloudEventsReceiver
from loadgen import lua_script, run_wrk, wrk_binary
from models import make_models
from runtime import kubeserve_bin, machine_info, run_header
from servers import Target, free_port, kubeserve_target, running

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
LOGS = RESULTS / "tmp"
CONFIGS = ("off", "http-live", "http-batch", "http-dead")
BATCH_SIZE = 100
PAYLOAD_METRICS = (
    "kubeserve_payload_events_sent_total",
    "kubeserve_payload_events_dropped_total",
    "kubeserve_payload_send_failures_total",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per point")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per server")
    parser.add_argument("--concurrency", default="1,64", help="comma-separated connections")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every config")
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {CONFIGS}"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    return parser.parse_args(argv)


def logger_json(config: str, receiver: CloudEventsReceiver) -> str | None:
    """The --payload-logger value of a configuration (None = logging off)."""
    if config == "off":
        return None
    url = receiver.url if config != "http-dead" else f"http://127.0.0.1:{free_port()}/"
    sink: dict[str, Any] = {"url": url}
    if config == "http-batch":
        sink["batchSize"] = BATCH_SIZE
    return json.dumps({"mode": "all", "sampleRate": 1.0, "sinks": [{"http": sink}]})


def metrics_port(target: Target) -> int:
    """The metrics port on a kubeserve target's command line."""
    return int(target.command[target.command.index("--metrics-port") + 1])


def payload_counts(target: Target) -> dict[str, float]:
    """The payload logger's counters, summed per metric and label set."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port(target)}/metrics").text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(PAYLOAD_METRICS):
            name, value = line.rsplit(" ", 1)
            counts[name] = float(value)
    return counts


def measure(
    target: Target, payload: bytes, levels: list[int], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Start one configuration, warm it up, and run wrk at every level."""
    script = lua_script(payload, LOGS / "payloadlog.lua")
    rows = []
    with running(target, LOGS / f"payloadlog-{target.variant}.log", payload):
        if args.warmup > 0:
            run_wrk(target.infer_url, script, 8, args.warmup)
        for level in levels:
            before = payload_counts(target)
            result = run_wrk(target.infer_url, script, level, args.duration)
            after = payload_counts(target)
            delta = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k)}
            rows.append({"config": target.variant, **result.as_dict(), "payload_events": delta})
            print(
                f"  {target.variant:10} c={level:<3} {result.rps:9.0f} req/s  "
                f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
                f"errors {result.errors}",
                flush=True,
            )
    return rows


def summary(rows: list[dict[str, Any]], levels: list[int]) -> list[dict[str, Any]]:
    """Per config and level: median rps and p99 over rounds, and the ratio to logging off."""

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    out = []
    for level in levels:
        base: dict[str, float] = {}
        for config in CONFIGS:
            points = [r for r in rows if r["config"] == config and r["concurrency"] == level]
            if not points:
                continue
            rps = median([p["rps"] for p in points])
            p99 = median([p["p99_ms"] for p in points])
            if config == "off":
                base = {"rps": rps, "p99": p99}
            out.append(
                {
                    "config": config,
                    "concurrency": level,
                    "rps": round(rps, 1),
                    "p99_ms": p99,
                    "throughput_cost_pct": round(100 * (1 - rps / base["rps"]), 1),
                    "p99_ratio": round(p99 / base["p99"], 2),
                }
            )
    return out


def markdown(table: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table."""
    lines = [
        "| config | c | req/s | p99 ms | throughput cost | p99 vs off |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['config']} | {r['concurrency']} | {r['rps']:.0f} | {r['p99_ms']:.2f} | "
        f"{r['throughput_cost_pct']:.1f}% | {r['p99_ratio']:.2f}x |"
        for r in table
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    args = parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    unknown = set(args.configs.split(",")) - set(CONFIGS)
    if unknown or "off" not in args.configs.split(","):
        raise SystemExit(f"--configs: a subset of {CONFIGS} with off (the baseline)")
    wrk_binary()
    LOGS.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    machine_before = machine_info()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kubeserve-bench-") as tmp:
        work = Path(tmp)
        model = make_models(work / "models")["sklearn"]
        binary = kubeserve_bin()
        with CloudEventsReceiver(work) as receiver:
            for round_number in range(args.rounds):
                print(f"round {round_number + 1}/{args.rounds}", flush=True)
                for config in args.configs.split(","):
                    target = kubeserve_target(model, work, binary, None)
                    value = logger_json(config, receiver)
                    extra = [] if value is None else ["--payload-logger", value]
                    target = replace(target, variant=config, command=[*target.command, *extra])
                    rows += measure(target, model.payload(), levels, args)
            received = len(receiver.events())
    table = summary(rows, levels)
    data = {
        **run_header("payloadlog.py", argv, machine_before),
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": levels,
            "rounds": args.rounds,
            "configs": args.configs.split(","),
            "payload": "V2 JSON infer, one FP32 row of 32 features, sklearn model",
            "logger": "mode all, sampleRate 1, one http sink (binary mode; batch mode: 100)",
        },
        "results": rows,
        "summary": table,
        "events_received_by_live_sink": received,
        "wall_s": round(time.monotonic() - started, 1),
    }
    (args.out / "payloadlog.json").write_text(json.dumps(data, indent=2) + "\n")
    print()
    print(markdown(table))
    print(f"wrote {args.out / 'payloadlog.json'} in {data['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
