"""Soak: mixed valid and hostile traffic against one runtime, with memory and error checks.

    python bench/soak.py [--duration 600 | --requests N] [--concurrency 32]
                         [--model-dir DIR] [--warmup 2000] [--out bench/results]

Limits first: the load generator is Python (httpx for REST, grpc.aio for gRPC) in one
process on the same machine as the server, so latencies include the client's own
scheduling and the rate is what the client manages, not the server's ceiling (that is
``bench/runtime.py``'s job, with wrk). RSS is read from ``/proc`` (Linux only).

Traffic: ``concurrency`` workers send, round-robin, a schedule in which every valid
request (V2 JSON, V2 binary, V1, gRPC raw contents) is followed by a hostile one
(null, strings and booleans among numbers, numbers beyond the datatype, uneven rows,
shapes numpy cannot hold, bytes that do not add up, unknown datatypes; over every
protocol). The server runs the model with the adaptive batcher on.

Checks, each must hold or the exit status is 1: no valid request fails; every hostile
request is answered 4xx (gRPC INVALID_ARGUMENT); the server's RSS at the end is less
than 10% above its RSS after the warm-up requests. Without ``--model-dir`` the
benchmark's ONNX model (``models.py``) is trained and served. Results:
``bench/results/soak.json`` (``--out``), a summary on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np

from kubeserve_runtime.grpc.generated import grpc_predict_v2_pb2 as pb
from kubeserve_runtime.grpc.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from kubeserve_runtime.testing import RuntimeProcess
from models import make_models

RESULTS = Path(__file__).resolve().parent / "results"
RSS_GROWTH_LIMIT = 0.10
MODEL_NAME = "soak"
Outcome = tuple[int, str]  # HTTP status (gRPC mapped to HTTP) and a short detail


@dataclass(frozen=True)
class Shot:
    """One kind of request the workers send."""

    name: str
    hostile: bool
    send: Callable[[Clients], Awaitable[Outcome]]


@dataclass
class Clients:
    """The connections every worker shares."""

    http: httpx.AsyncClient
    grpc: Any  # the GRPCInferenceService stub on one grpc.aio channel
    infer_path: str


@dataclass
class Tally:
    """What the workers saw."""

    sent: Counter[str] = field(default_factory=Counter)
    hostile: int = 0
    valid_latency_s: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    failed_valid: int = 0
    hostile_not_4xx: int = 0

    def record(self, shot: Shot, outcome: Outcome, seconds: float) -> None:
        """Count one answer against what that kind of request must get."""
        self.sent[shot.name] += 1
        status, detail = outcome
        if shot.hostile:
            self.hostile += 1
            if not 400 <= status < 500:
                self.hostile_not_4xx += 1
                self._keep(f"{shot.name}: {status} {detail}")
        elif status != 200:
            self.failed_valid += 1
            self._keep(f"{shot.name}: {status} {detail}")
        else:
            self.valid_latency_s.setdefault(shot.name.split(" ")[0], []).append(seconds)

    def _keep(self, line: str) -> None:
        """Keep the first few failures for the report."""
        if len(self.failures) < 20:
            self.failures.append(line[:300])


def _http_outcome(response: httpx.Response) -> Outcome:
    """Status and a short detail of a REST answer."""
    if response.status_code == 200:
        return 200, ""
    return response.status_code, response.text[:200]


def _post(**kwargs: Any) -> Callable[[Clients], Awaitable[Outcome]]:
    """A V2 infer POST with these httpx arguments."""

    async def send(clients: Clients) -> Outcome:
        return _http_outcome(await clients.http.post(clients.infer_path, **kwargs))

    return send


def _v1(doc: Any) -> Callable[[Clients], Awaitable[Outcome]]:
    """A V1 :predict POST."""

    async def send(clients: Clients) -> Outcome:
        path = f"/v1/models/{MODEL_NAME}:predict"
        return _http_outcome(await clients.http.post(path, json=doc))

    return send


def _binary(header: dict[str, Any], raw: bytes) -> Callable[[Clients], Awaitable[Outcome]]:
    """A V2 binary-extension POST: one input whose data are ``raw``."""
    header["inputs"][0]["parameters"] = {"binary_data_size": len(raw)}
    head = json.dumps(header).encode()
    return _post(content=head + raw, headers={"Inference-Header-Content-Length": str(len(head))})


def _grpc(request: Any) -> Callable[[Clients], Awaitable[Outcome]]:
    """A gRPC ModelInfer call."""
    codes = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404}

    async def send(clients: Clients) -> Outcome:
        try:
            await clients.grpc.ModelInfer(request, timeout=60)
        except grpc.aio.AioRpcError as exc:
            return codes.get(exc.code(), 500), f"{exc.code().name} {exc.details()}"
        return 200, ""

    return send


def _grpc_request(name: str, datatype: str, shape: list[int], raw: bytes) -> Any:
    """A ModelInferRequest with one input in raw_input_contents."""
    request = pb.ModelInferRequest(model_name=MODEL_NAME)
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    request.raw_input_contents.append(raw)
    return request


def build_shots(name: str, datatype: str, features: int) -> list[Shot]:
    """The schedule: each valid request followed by a hostile one."""
    rng = np.random.default_rng(0)
    row = [round(float(v), 5) for v in rng.normal(size=features)]
    dtype = "<f4" if datatype == "FP32" else "<f8"
    raw = np.asarray([row], dtype=dtype).tobytes()

    def tensor(**change: Any) -> dict[str, Any]:
        base = {"name": name, "datatype": datatype, "shape": [1, features], "data": row}
        return {"inputs": [{**base, **change}]}

    nulls = [None, *row[1:]]
    huge = [2**32, 2**32]
    valid = [
        Shot("v2-json", False, _post(json=tensor())),
        Shot("v2-binary", False, _binary(tensor(), raw)),
        Shot("v1", False, _v1({"instances": [row]})),
        Shot("grpc", False, _grpc(_grpc_request(name, datatype, [1, features], raw))),
    ]
    hostile = [
        Shot("v2-json null", True, _post(json=tensor(data=nulls))),
        Shot("v2-json 'nan'", True, _post(json=tensor(data=["nan", *row[1:]]))),
        Shot("v2-json true among numbers", True, _post(json=tensor(data=[True, *row[1:]]))),
        Shot(
            "v2-json 1e39 for FP32",
            True,
            _post(json=tensor(datatype="FP32", data=[1e39, *row[1:]])),
        ),
        Shot(
            "v2-json uneven rows",
            True,
            _post(json=tensor(shape=[2, features], data=[row, row[1:]])),
        ),
        Shot("v2-json huge shape", True, _post(json=tensor(shape=huge))),
        Shot("v2-json unknown datatype", True, _post(json=tensor(datatype="FP33"))),
        Shot("v2-binary short", True, _binary(tensor(), raw[:-1])),
        Shot("v2-binary huge shape", True, _binary(tensor(shape=huge), raw)),
        Shot("v1 null", True, _v1({"instances": [nulls]})),
        Shot("v1 'inf'", True, _v1({"instances": [["inf", *row[1:]]]})),
        Shot("grpc huge shape", True, _grpc(_grpc_request(name, datatype, huge, raw))),
        Shot("grpc short", True, _grpc(_grpc_request(name, datatype, [1, features], raw[:-1]))),
        Shot("grpc unknown datatype", True, _grpc(_grpc_request(name, "FP33", [1, features], raw))),
        Shot(
            "grpc BYTES length past the end",
            True,
            _grpc(_grpc_request(name, "BYTES", [1], struct.pack("<I", 99) + b"ab")),
        ),
        Shot(
            "v2-json 1.5 for INT8", True, _post(json=tensor(datatype="INT8", data=[1.5, *row[1:]]))
        ),
    ]
    return [shot for pair in zip(valid * 4, hostile, strict=True) for shot in pair]


async def drive(
    clients: Clients, shots: list[Shot], concurrency: int, until: Callable[[int], bool]
) -> Tally:
    """Send the schedule round-robin from ``concurrency`` workers until ``until(sent)``."""
    tally = Tally()
    counter = 0

    async def worker() -> None:
        nonlocal counter
        while not until(counter):
            shot = shots[counter % len(shots)]
            counter += 1
            started = time.perf_counter()
            try:
                outcome = await shot.send(clients)
            except httpx.HTTPError as exc:
                outcome = 599, f"{type(exc).__name__}: {exc}"
            tally.record(shot, outcome, time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds."""
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "count": len(ordered),
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": round(ordered[-1] * 1000, 2),
        "mean": round(statistics.fmean(ordered) * 1000, 2),
    }


def machine() -> dict[str, Any]:
    """CPU, cores, OS, Python and the load average now."""
    cpu = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    return {
        "cpu_model": cpu,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
    }


async def soak(server: RuntimeProcess, args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, then run the measured phase while sampling the server's RSS."""
    assert server.process is not None
    pid = server.process.pid
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with (
        httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as http,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        meta = (await http.get(f"/v2/models/{MODEL_NAME}")).json()
        spec = meta["inputs"][0]
        shots = build_shots(spec["name"], spec["datatype"], int(spec["shape"][-1]))
        clients = Clients(
            http, pb_grpc.GRPCInferenceServiceStub(channel), f"/v2/models/{MODEL_NAME}/infer"
        )
        warmup: int = args.warmup
        warm = await drive(clients, shots, args.concurrency, lambda sent: sent >= warmup)
        rss_start = rss_mb(pid)
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        requests: int | None = args.requests
        duration: float = args.duration

        def until(sent: int) -> bool:
            elapsed = time.monotonic() - started
            if not samples or elapsed - samples[-1][0] >= 5:
                samples.append((round(elapsed, 1), round(rss_mb(pid), 1)))
            return sent >= requests if requests is not None else elapsed >= duration

        tally = await drive(clients, shots, args.concurrency, until)
        wall = time.monotonic() - started
        rss_end = rss_mb(pid)
    all_valid = [s for values in tally.valid_latency_s.values() for s in values]
    growth = (rss_end - rss_start) / rss_start
    checks = {
        "no_valid_errors": tally.failed_valid == 0 and warm.failed_valid == 0,
        "hostile_all_4xx": tally.hostile_not_4xx == 0 and warm.hostile_not_4xx == 0,
        "rss_growth_under_10pct": growth < RSS_GROWTH_LIMIT,
    }
    return {
        "model_input": spec,
        "measured_s": round(wall, 1),
        "requests": {
            "total": sum(tally.sent.values()),
            "valid": sum(tally.sent.values()) - tally.hostile,
            "hostile": tally.hostile,
            "per_second": round(sum(tally.sent.values()) / wall, 1),
            "by_kind": dict(sorted(tally.sent.items())),
        },
        "valid_errors": tally.failed_valid + warm.failed_valid,
        "hostile_not_4xx": tally.hostile_not_4xx + warm.hostile_not_4xx,
        "failures": warm.failures + tally.failures,
        "latency_valid_ms": {
            "all": percentiles_ms(all_valid),
            **{k: percentiles_ms(v) for k, v in sorted(tally.valid_latency_s.items())},
        },
        "rss_mb": {
            "after_warmup": round(rss_start, 1),
            "end": round(rss_end, 1),
            "max": max([rss_end, *(mb for _, mb in samples)]),
            "growth": round(growth, 4),
            "samples_t_s_mb": samples,
        },
        "checks": checks,
        "passed": all(checks.values()),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="measured seconds")
    parser.add_argument("--requests", type=int, help="measured requests (instead of --duration)")
    parser.add_argument("--warmup", type=int, default=2000, help="requests before RSS is read")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--model-dir", type=Path, help="serve this model instead of training one")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where soak.json goes")
    return parser.parse_args(argv)


def _serve(model_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run the soak against a runtime serving ``model_dir``."""
    with RuntimeProcess(
        model_dir, MODEL_NAME, "--max-batch-size", str(args.max_batch_size)
    ) as server:
        return asyncio.run(soak(server, args))


def main(argv: list[str] | None = None) -> int:
    """Run the soak, write soak.json, print the figures; 1 when a check fails."""
    args = parse_args(argv)
    before = machine()
    with tempfile.TemporaryDirectory(prefix="kubeserve-soak-") as tmp:
        model_dir = args.model_dir
        if model_dir is None:
            model_dir = make_models(Path(tmp))["onnx"].directory
        result = _serve(model_dir, args)
    data = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/soak.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": before,
        "load_average_at_end": machine()["load_average_1_5_15"],
        "config": {
            "duration_s": None if args.requests is not None else args.duration,
            "requests": args.requests,
            "warmup_requests": args.warmup,
            "concurrency": args.concurrency,
            "max_batch_size": args.max_batch_size,
            "model": str(args.model_dir) if args.model_dir else "bench ONNX MLP (models.py)",
            "rss_growth_limit": RSS_GROWTH_LIMIT,
        },
        **result,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(data, indent=2) + "\n")
    latency = result["latency_valid_ms"]["all"]
    rss = result["rss_mb"]
    print(
        f"{result['requests']['total']} requests in {result['measured_s']} s "
        f"({result['requests']['per_second']}/s, c={args.concurrency}); valid p50 "
        f"{latency.get('p50')} ms p99 {latency.get('p99')} ms; valid errors "
        f"{result['valid_errors']}, hostile not 4xx {result['hostile_not_4xx']}; RSS "
        f"{rss['after_warmup']} -> {rss['end']} MiB ({rss['growth']:+.1%})"
    )
    for line in result["failures"]:
        print(f"  {line}")
    print(f"checks: {result['checks']} -> {'PASS' if result['passed'] else 'FAIL'}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
