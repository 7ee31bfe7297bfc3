"""The Grafana dashboard: generated from code, committed fresh, every query valid PromQL.

That every query returns data is tested against the real Prometheus in
``tests/runtime/test_prometheus_analysis.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import promql_parser
import pytest

from kubeserve import dashboard
from kubeserve.api.commands import stale_files
from kubeserve.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_committed_dashboard_is_fresh() -> None:
    """dashboards/kubeserve.json equals the code's render (run `kubeserve dashboard`)."""
    assert stale_files(ROOT, dashboard.generated_files) == [], "run `kubeserve dashboard`"


def test_dashboard_command_writes_and_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboard", "--root", str(tmp_path), "--check"]) == 1
    assert "stale: " in capsys.readouterr().err
    assert main(["dashboard", "--root", str(tmp_path)]) == 0
    assert (tmp_path / dashboard.FILE).read_text() == dashboard.render()
    assert main(["dashboard", "--root", str(tmp_path), "--check"]) == 0


def test_every_query_is_promql_on_the_chosen_inferenceservice() -> None:
    board = json.loads(dashboard.render())
    queries = dashboard.queries(board)
    titles = [spec.title for _, specs in dashboard.PANELS for spec in specs]
    assert sorted({title for title, _ in queries}) == sorted(titles)
    for title, expr in queries:
        assert '"$namespace"' in expr, title
        assert '"$model"' in expr, title
        promql_parser.parse(dashboard.expand(expr, "ml", "iris"))


def test_variables_pick_a_prometheus_namespace_and_inferenceservice() -> None:
    board = dashboard.build()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "model"]
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["model"]["query"] == (
        'label_values(kubeserve_requests_total{namespace="$namespace"}, model)'
    )
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert all(p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for p in panels)
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


def test_expand_fills_the_variables_as_grafana_does() -> None:
    expr = 'rate(x{namespace="$namespace",model="$model"}[$__rate_interval])'
    assert dashboard.expand(expr, "ml", "iris", "2m") == 'rate(x{namespace="ml",model="iris"}[2m])'
