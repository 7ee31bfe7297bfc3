"""Side-by-side benchmark of the serving runtime: kubeserve vs KServe vs MLServer.

    python bench/runtime.py [--duration 10] [--concurrency 1,8,64] [--servers ...]

One run trains the two models (scikit-learn LogisticRegression, ONNX MLP), creates the
peers' virtual environments under bench/.venvs/ if needed, then for each server and
model: start it on loopback, wait for readiness, check one inference, warm up, and
drive it with wrk at each concurrency using the same V2 JSON request. The floor is
measured the same way: the model's in-process predict time and a bare HTTP echo on the
runtime's stack. Results: bench/results/runtime.json, bench/results/runtime.png and a
Markdown table on stdout. This is a benchmark, not a test: nothing here runs in
``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import report
from floor import predict_timing
from loadgen import lua_script, run_wrk, wrk_binary, wrk_version
from models import make_models
from peers import installed_versions, peers
from servers import Target, echo_target, kserve_target, kubeserve_target, mlserver_target, running

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
LOGS = RESULTS / "tmp"
BATCH = (32, 2.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per point")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per server")
    parser.add_argument("--concurrency", default="1,8,64", help="comma-separated connections")
    parser.add_argument(
        "--servers",
        default="kubeserve,kserve,mlserver,echo",
        help="comma-separated subset of kubeserve,kserve,mlserver,echo",
    )
    parser.add_argument("--models", default="sklearn,onnx", help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where JSON and PNG go")
    return parser.parse_args(argv)


def machine_info() -> dict[str, Any]:
    """CPU model, core count, OS and Python of this machine."""
    cpu = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_generator": wrk_version(),
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
    }


def run_header(
    script: str, argv: list[str] | None, machine_before: dict[str, Any]
) -> dict[str, Any]:
    """The first keys of a results file: when, the command, the machine before and after."""
    return {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"python bench/{script} " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_before,
        "load_average_at_end": machine_info()["load_average_1_5_15"],
    }


def kubeserve_bin() -> Path:
    """The kubeserve-runtime script next to this interpreter, checked for `serve`."""
    path = Path(sys.executable).parent / "kubeserve-runtime"
    import subprocess

    probe = subprocess.run(
        [str(path), "serve", "--help"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        raise SystemExit(f"{path} has no working `serve` subcommand yet:\n{probe.stderr[-500:]}")
    return path


def build_targets(
    chosen: set[str], model_names: list[str], work: Path, models: dict[str, Any]
) -> list[Target]:
    """Every server configuration to measure, in run order."""
    targets: list[Target] = []
    available = peers()
    if "echo" in chosen:
        targets.append(echo_target(Path(sys.executable), BENCH))
    for name in model_names:
        model = models[name]
        if "kubeserve" in chosen:
            binary = kubeserve_bin()
            targets.append(kubeserve_target(model, work, binary, None))
            targets.append(kubeserve_target(model, work, binary, BATCH))
        if "kserve" in chosen:
            targets.append(kserve_target(model, work, available["kserve"]))
        if "mlserver" in chosen:
            targets.append(mlserver_target(model, work, available["mlserver"]))
    return targets


def measure(
    target: Target, payload: bytes, levels: list[int], args: argparse.Namespace
) -> tuple[list[dict[str, Any]], dict[str, object]]:
    """Start the target, warm it up and run wrk at every concurrency level."""
    script = lua_script(payload, LOGS / f"{target.server}-{target.model}.lua")
    log = LOGS / f"{target.label.replace(' ', '_').replace('/', '-')}-{target.model}.log"
    rows: list[dict[str, Any]] = []
    with running(target, log, payload) as sample:
        if args.warmup > 0:
            run_wrk(target.infer_url, script, 8, args.warmup)
        for level in levels:
            result = run_wrk(target.infer_url, script, level, args.duration)
            row = {
                "server": target.server,
                "model": target.model,
                "variant": target.variant,
                "label": target.label,
                **result.as_dict(),
            }
            print(
                f"  {target.label:28} {target.model:8} c={level:<3} {result.rps:9.0f} req/s  "
                f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  errors {result.errors}",
                flush=True,
            )
            rows.append(row)
    return rows, sample


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    args = parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    chosen = set(args.servers.split(","))
    model_names = args.models.split(",")
    wrk_binary()
    LOGS.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    machine_before = machine_info()
    available = peers()
    from peers import ensure_venv

    for name in ("kserve", "mlserver"):
        if name in chosen:
            ensure_venv(available[name], LOGS / f"{name}-install.log")

    with tempfile.TemporaryDirectory(prefix="kubeserve-bench-") as tmp:
        work = Path(tmp)
        models = make_models(work / "models")
        predict = {name: predict_timing(models[name]) for name in model_names}
        for name, timing in predict.items():
            print(f"in-process predict {name}: p50 {timing['p50_us']} µs", flush=True)
        results: list[dict[str, Any]] = []
        samples: dict[str, object] = {}
        for target in build_targets(chosen, model_names, work, models):
            model = models.get(target.model) or models[model_names[0]]
            print(f"{target.label} / {target.model}", flush=True)
            rows, sample = measure(target, model.payload(), levels, args)
            results.extend(rows)
            samples[f"{target.label}/{target.model}"] = sample

    floor_rows = report.floors(results, predict)
    data: dict[str, Any] = {
        **run_header("runtime.py", argv, machine_before),
        "config": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": levels,
            "payload": "V2 JSON infer, one FP32 row of 32 features",
            "kubeserve_batching": {"max_batch_size": BATCH[0], "max_latency_ms": BATCH[1]},
            "peer_settings": "framework defaults apart from ports",
        },
        "versions": {
            name: installed_versions(peer) for name, peer in available.items() if name in chosen
        },
        "floor": {"predict_in_process": predict, "c1": floor_rows},
        "results": results,
        "ratios": report.ratios(results),
        "goals": report.goals(results, floor_rows),
        "sample_responses": samples,
        "wall_s": round(time.monotonic() - started, 1),
    }
    (args.out / "runtime.json").write_text(json.dumps(data, indent=2) + "\n")
    report.plot(data, args.out / "runtime.png")
    table = report.markdown(data)
    (args.out / "runtime.md").write_text(table)
    print()
    print(table)
    print(f"wrote {args.out / 'runtime.json'}, runtime.png and runtime.md in {data['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
