"""Turning measurements into ratios, goal verdicts, a Markdown table and a PNG plot.

Ratios are kubeserve / peer for throughput (higher is better) and kubeserve / peer for
p99 latency (lower is better). The floor at c=1 is the in-process predict p50 plus the
bare echo's p50 on the same HTTP stack; the goal is kubeserve's c=1 p50 within 1.5x of
it (checked for every kubeserve variant, batching on and off). At c=64 the goal is at
least 2x the best peer's req/s with a lower p99.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

Row = dict[str, Any]
PEERS = ("kserve", "mlserver")


def _rows(results: list[Row], **match: object) -> list[Row]:
    """Rows whose fields equal every given value."""
    return [r for r in results if all(r.get(k) == v for k, v in match.items())]


def ratios(results: list[Row]) -> list[Row]:
    """kubeserve (every variant) divided by each peer, per model and concurrency."""
    out: list[Row] = []
    for ours in _rows(results, server="kubeserve"):
        for peer in PEERS:
            theirs = _rows(
                results, server=peer, model=ours["model"], concurrency=ours["concurrency"]
            )
            if not theirs or not theirs[0]["rps"]:
                continue
            out.append(
                {
                    "model": ours["model"],
                    "variant": ours["variant"],
                    "concurrency": ours["concurrency"],
                    "peer": peer,
                    "rps_ratio": round(ours["rps"] / theirs[0]["rps"], 2),
                    "p99_ratio": round(ours["p99_ms"] / theirs[0]["p99_ms"], 2),
                }
            )
    return out


def floors(results: list[Row], predict: dict[str, dict[str, float]]) -> list[Row]:
    """The c=1 floor per model and kubeserve's distance from it."""
    echo = _rows(results, server="echo", concurrency=1)
    out: list[Row] = []
    if not echo:
        return out
    for model, timing in predict.items():
        floor_ms = echo[0]["p50_ms"] + timing["p50_us"] / 1000
        for ours in _rows(results, server="kubeserve", model=model, concurrency=1):
            out.append(
                {
                    "model": model,
                    "variant": ours["variant"],
                    "predict_p50_us": timing["p50_us"],
                    "echo_p50_ms": echo[0]["p50_ms"],
                    "floor_ms": round(floor_ms, 3),
                    "kubeserve_p50_ms": ours["p50_ms"],
                    "ratio": round(ours["p50_ms"] / floor_ms, 2),
                }
            )
    return out


def goals(results: list[Row], floor_rows: list[Row]) -> list[Row]:
    """Verdicts for the two goals, per model (kubeserve's best variant at c=64)."""
    out: list[Row] = []
    for model in sorted({r["model"] for r in _rows(results, server="kubeserve")}):
        ours = _rows(results, server="kubeserve", model=model, concurrency=64)
        peers = [r for p in PEERS for r in _rows(results, server=p, model=model, concurrency=64)]
        if ours and peers:
            best = max(ours, key=lambda r: r["rps"])
            best_peer = max(peers, key=lambda r: r["rps"])
            lowest_p99 = min(r["p99_ms"] for r in peers)
            out.append(
                {
                    "model": model,
                    "goal": "c=64: >= 2x best peer req/s and lower p99",
                    "kubeserve": f"{best['variant']}: {best['rps']:.0f} req/s, "
                    f"p99 {best['p99_ms']:.1f} ms",
                    "best_peer": f"{best_peer['server']}: {best_peer['rps']:.0f} req/s, "
                    f"lowest peer p99 {lowest_p99:.1f} ms",
                    "met": best["rps"] >= 2 * best_peer["rps"] and best["p99_ms"] < lowest_p99,
                }
            )
        for floor in [f for f in floor_rows if f["model"] == model]:
            out.append(
                {
                    "model": model,
                    "goal": "c=1: p50 within 1.5x of the floor",
                    "kubeserve": f"{floor['variant']}: p50 {floor['kubeserve_p50_ms']:.3f} ms",
                    "best_peer": f"floor {floor['floor_ms']:.3f} ms (ratio {floor['ratio']:.2f})",
                    "met": floor["ratio"] <= 1.5,
                }
            )
    return out


def markdown(data: dict[str, Any]) -> str:
    """The README tables."""
    results: list[Row] = data["results"]
    lines = [
        "| model | server | c | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['label']} | {r['concurrency']} | {r['rps']:.0f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |"
        )
    lines += [
        "",
        "Ratios, kubeserve ÷ peer (req/s: higher is better; p99: lower is better):",
        "",
        "| model | kubeserve | c | vs kserve req/s | vs kserve p99 | vs mlserver req/s "
        "| vs mlserver p99 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    by_key: dict[tuple[str, str, int], dict[str, Row]] = {}
    for ratio in data["ratios"]:
        key = (ratio["model"], ratio["variant"], ratio["concurrency"])
        by_key.setdefault(key, {})[ratio["peer"]] = ratio
    for (model, variant, c), peers in by_key.items():
        cells = []
        for peer in PEERS:
            got = peers.get(peer)
            cells += [f"{got['rps_ratio']:.2f}x", f"{got['p99_ratio']:.2f}x"] if got else ["", ""]
        lines.append(f"| {model} | {variant} | {c} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Floor at c=1 (in-process predict p50 + bare echo p50 on uvicorn/uvloop/httptools/"
        "Starlette):",
        "",
        "| model | predict p50 µs | echo p50 ms | floor ms | kubeserve | kubeserve p50 ms "
        "| ÷ floor |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for f in data["floor"]["c1"]:
        lines.append(
            f"| {f['model']} | {f['predict_p50_us']:.0f} | {f['echo_p50_ms']:.3f} | "
            f"{f['floor_ms']:.3f} | {f['variant']} | {f['kubeserve_p50_ms']:.3f} | "
            f"{f['ratio']:.2f}x |"
        )
    lines += ["", "| model | goal | kubeserve | reference | met |", "|---|---|---|---|---|"]
    for g in data["goals"]:
        lines.append(
            f"| {g['model']} | {g['goal']} | {g['kubeserve']} | {g['best_peer']} | "
            f"{'yes' if g['met'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def plot(data: dict[str, Any], path: Path) -> None:
    """Throughput and p99 against concurrency, one row of panels per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results: list[Row] = data["results"]
    models = sorted({r["model"] for r in results if r["model"] != "-"})
    figure, axes = plt.subplots(len(models), 2, figsize=(11, 4 * len(models)), squeeze=False)
    echo = [r for r in results if r["server"] == "echo"]
    for row, model in enumerate(models):
        labels = sorted({r["label"] for r in results if r["model"] == model})
        for label in labels:
            series = sorted(
                (r for r in results if r["model"] == model and r["label"] == label),
                key=lambda r: r["concurrency"],
            )
            cs = [r["concurrency"] for r in series]
            axes[row][0].plot(cs, [r["rps"] for r in series], marker="o", label=label)
            axes[row][1].plot(cs, [r["p99_ms"] for r in series], marker="o", label=label)
        if echo:
            cs = [r["concurrency"] for r in echo]
            axes[row][0].plot(cs, [r["rps"] for r in echo], "k--", label="echo floor")
            axes[row][1].plot(cs, [r["p99_ms"] for r in echo], "k--", label="echo floor")
        for col, title in enumerate(("req/s", "p99 latency (ms)")):
            axis = axes[row][col]
            axis.set_xscale("log", base=2)
            axis.set_xticks([1, 8, 64], labels=["1", "8", "64"])
            axis.set_xlabel("concurrent connections")
            axis.set_title(f"{model}: {title}")
            axis.grid(alpha=0.3)
        axes[row][1].set_yscale("log")
        axes[row][0].legend(fontsize=8)
    machine = data["machine"]
    figure.suptitle(
        f"kubeserve vs KServe vs MLServer — {machine['cpu_model']}, {machine['cpus']} CPUs, "
        f"wrk {data['config']['duration_s']:g}s per point"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
