"""The soak benchmark's checks on a bounded run: bench/soak.py as a user runs it.

A fixed number of requests (not a duration), so the test does the same work on a slow
machine as on a fast one: mixed valid and hostile traffic at c=32 against one runtime
serving the iris model; no valid request may fail, every hostile one must be a 4xx,
and the server's RSS must stay within 10% of its size after the warm-up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 1600  # 50 rounds of the 32-request schedule
WARMUP = 320


def test_bounded_soak_passes_its_checks(sklearn_dir: Path, tmp_path: Path) -> None:
    """Exit 0, and the JSON result says why: counts, errors, 4xx answers, RSS growth."""
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "soak.py"),
            "--requests",
            str(REQUESTS),
            "--warmup",
            str(WARMUP),
            "--concurrency",
            "32",
            "--model-dir",
            str(sklearn_dir),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=540,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((tmp_path / "soak.json").read_text())
    assert result["passed"] is True
    assert result["checks"] == {
        "no_valid_errors": True,
        "hostile_all_4xx": True,
        "rss_growth_under_10pct": True,
    }
    requests = result["requests"]
    assert requests["total"] == REQUESTS
    assert requests["valid"] == requests["hostile"] == REQUESTS // 2
    assert len(requests["by_kind"]) == 20  # 4 valid kinds, 16 hostile ones
    assert result["valid_errors"] == result["hostile_not_4xx"] == 0
    assert result["rss_mb"]["growth"] < 0.10
    assert result["latency_valid_ms"]["all"]["count"] == REQUESTS // 2
