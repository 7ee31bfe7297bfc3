"""Every PromQL block of DESIGN.md's feedback section parses, and names only real families.

The expressions are documentation users paste into recording rules; this keeps them
valid PromQL (promql-parser, the operator's own parser) and keeps their metric names
in step with the runtime's families (a real registry of ``QualityMetrics``).
"""

from __future__ import annotations

import re
from pathlib import Path

import promql_parser
from prometheus_client import CollectorRegistry, generate_latest

from kubeserve_runtime.feedback.quality import QualityMetrics

DESIGN = Path(__file__).resolve().parents[2] / "docs" / "DESIGN.md"
SECTION = "## Ground-truth feedback"


def _blocks() -> list[str]:
    text = DESIGN.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", 1)]
    return [
        "\n".join(line for line in block.splitlines() if not line.strip().startswith("#"))
        for block in re.findall(r"```promql\n(.*?)```", section, flags=re.S)
    ]


def _exported_names() -> set[str]:
    registry = CollectorRegistry()
    metrics = QualityMetrics(registry, "m", "r")
    metrics.correct.labels("m", "r", "v", "a").inc()
    metrics.confusion.labels("m", "r", "v", "a", "a").inc()
    for family in (metrics.absolute_error, metrics.squared_error, metrics.reward):
        family.labels("m", "r", "v").observe(1.0)
    text = generate_latest(registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def test_every_documented_query_parses_and_names_exported_families() -> None:
    blocks = _blocks()
    assert len(blocks) == 7
    exported = _exported_names()
    named: set[str] = set()
    for block in blocks:
        promql_parser.parse(block)  # raises on invalid PromQL
        named.update(re.findall(r"\b(kubeserve_feedback_\w+)\[", block))
    assert named <= exported, named - exported
    assert len(named) == 8  # total, correct, and _sum/_count of the three summaries
