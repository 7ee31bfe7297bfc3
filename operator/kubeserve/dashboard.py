"""The Grafana dashboard of an InferenceService, built with grafana-foundation-sdk.

Limits: Prometheus only (a datasource variable picks which); one namespace and one
InferenceService at a time (single-value variables ``namespace`` and ``model``, the
runtime's ``model`` label being the InferenceService); the panels read the runtime's and
the operator's metrics directly, not the chart's recording rules, so they work without
the PrometheusRule, but the "Rollout conditions" panel needs the operator scraped
(``metrics.serviceMonitor.enabled``). The variant split reads the pod label
``serving_kubeserve_io_variant`` (see the README's Monitoring section); without it the
split is by revision only.

The JSON is committed in the chart (``dashboards/kubeserve.json``, shipped by
``templates/grafana-dashboard.yaml``) and kept fresh by ``kubeserve dashboard --check``
and a unit test. :func:`expand` fills the variables the way Grafana does, so tests and
``docs/dashboard.py`` run every panel's query against a real Prometheus.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos, VariableRefresh

UID = "kubeserve-inferenceservice"
FILE = Path("dashboards") / "kubeserve.json"
"""Where the chart keeps the generated JSON, relative to the repository (chart) root."""

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SELECTOR = 'namespace="$namespace",model="$model"'
"""The runtime series of the chosen InferenceService."""
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel and its legend (Grafana's ``{{label}}`` format)."""

    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    """A time-series panel: what it shows, in which unit, from which queries."""

    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]


def _by_version(aggregation: str) -> str:
    return f"sum by (version) ({aggregation})"


def _rate(family: str, extra: str = "") -> str:
    return f"rate({family}{{{SELECTOR}{extra}}}[{RATE}])"


def _quantile(q: float, family: str) -> str:
    return f"histogram_quantile({q}, sum by (le, version) ({_rate(family + '_bucket')}))"


def _feedback(family: str) -> str:
    return f"sum by (version, variant) (increase(kubeserve_feedback_{family}{{{SELECTOR}}}[1h]))"


SPLIT = "version, serving_kubeserve_io_variant"
FAILED = ',status=~"5.."'

PANELS: tuple[tuple[str, tuple[PanelSpec, ...]], ...] = (
    (
        "Traffic",
        (
            PanelSpec(
                "Request rate",
                "Requests per second by revision and HTTP/gRPC status.",
                "reqps",
                (
                    Query(
                        f"sum by (version, status) ({_rate('kubeserve_requests_total')})",
                        "{{version}} {{status}}",
                    ),
                ),
            ),
            PanelSpec(
                "Error ratio",
                "Share of 5xx answers by revision (0 when nothing failed).",
                "percentunit",
                (
                    Query(
                        f"({_by_version(_rate('kubeserve_requests_total', FAILED))}"
                        f" or 0 * {_by_version(_rate('kubeserve_requests_total'))})"
                        f" / {_by_version(_rate('kubeserve_requests_total'))}",
                        "{{version}}",
                    ),
                ),
            ),
            PanelSpec(
                "Latency",
                "Request latency percentiles by revision, from received to answered.",
                "s",
                (
                    Query(_quantile(0.5, "kubeserve_request_duration_seconds"), "p50 {{version}}"),
                    Query(_quantile(0.99, "kubeserve_request_duration_seconds"), "p99 {{version}}"),
                ),
            ),
            PanelSpec(
                "Canary / variant split",
                "Share of the InferenceService's requests each revision and variant serves.",
                "percentunit",
                (
                    Query(
                        f"sum by ({SPLIT}) ({_rate('kubeserve_requests_total')})"
                        f" / ignoring ({SPLIT}) group_left"
                        f" sum ({_rate('kubeserve_requests_total')})",
                        "{{version}} {{serving_kubeserve_io_variant}}",
                    ),
                ),
            ),
        ),
    ),
    (
        "Runtime",
        (
            PanelSpec(
                "Batch size",
                "Rows per model call (the batcher's work): mean and p99 by revision.",
                "short",
                (
                    Query(
                        f"{_by_version(_rate('kubeserve_batch_size_sum'))}"
                        f" / {_by_version(_rate('kubeserve_batch_size_count'))}",
                        "mean {{version}}",
                    ),
                    Query(_quantile(0.99, "kubeserve_batch_size"), "p99 {{version}}"),
                ),
            ),
            PanelSpec(
                "In-flight requests",
                "Requests being handled right now, summed over the revision's pods.",
                "short",
                (Query(_by_version(f"kubeserve_inflight_requests{{{SELECTOR}}}"), "{{version}}"),),
            ),
            PanelSpec(
                "Queue wait and inference",
                "p99 of the time a request waits for its model call, and of the call itself.",
                "s",
                (
                    Query(_quantile(0.99, "kubeserve_queue_duration_seconds"), "wait {{version}}"),
                    Query(
                        _quantile(0.99, "kubeserve_inference_duration_seconds"),
                        "inference {{version}}",
                    ),
                ),
            ),
            PanelSpec(
                "Payload-log drops",
                "Payload events dropped per second, by revision, sink and reason.",
                "short",
                (
                    Query(
                        "sum by (version, sink, reason) ("
                        'rate(kubeserve_payload_events_dropped_total{namespace="$namespace"}'
                        f"[{RATE}]) * on (namespace, pod) group_left (model, version)"
                        " group by (namespace, pod, model, version)"
                        f" (kubeserve_model_load_seconds{{{SELECTOR}}}))",
                        "{{version}} {{sink}} {{reason}}",
                    ),
                ),
            ),
        ),
    ),
    (
        "Model quality",
        (
            PanelSpec(
                "Input drift (PSI)",
                "Population Stability Index of each input feature against the model's "
                "reference profile (> 0.25: major drift).",
                "short",
                (
                    Query(
                        f"max by (version, feature) (kubeserve_input_drift_psi{{{SELECTOR}}})",
                        "{{version}} {{feature}}",
                    ),
                ),
            ),
            PanelSpec(
                "Feedback accuracy",
                "Share of predictions scored right by ground-truth feedback over the last "
                "hour, by revision and the variant that predicted.",
                "percentunit",
                (
                    Query(
                        f"({_feedback('correct_total')} or 0 * {_feedback('total')})"
                        f" / {_feedback('total')}",
                        "{{version}} {{variant}}",
                    ),
                ),
            ),
            PanelSpec(
                "Feedback error (regression)",
                "Mean absolute error and root mean squared error over the last hour.",
                "short",
                (
                    Query(
                        f"{_feedback('absolute_error_sum')} / {_feedback('absolute_error_count')}",
                        "MAE {{version}} {{variant}}",
                    ),
                    Query(
                        f"sqrt({_feedback('squared_error_sum')}"
                        f" / {_feedback('squared_error_count')})",
                        "RMSE {{version}} {{variant}}",
                    ),
                ),
            ),
            PanelSpec(
                "Rollout conditions",
                "The operator's conditions of the InferenceService (1 = True): a rollout "
                "in progress, a canary rolled back, ready.",
                "short",
                (
                    Query(
                        "max by (type) (kubeserve_inferenceservice_condition{"
                        'namespace="$namespace",name="$model",'
                        'type=~"Ready|RolloutProgressing|RolledBack"})',
                        "{{type}}",
                    ),
                ),
            ),
        ),
    ),
)
"""Rows of panels, in order."""

WIDTH, HEIGHT = 12, 8
"""Each panel is half the grid's 24 columns wide."""


def _panel(spec: PanelSpec, panel_id: int, x: int, y: int) -> Panel:
    panel = (
        Panel()
        .id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .unit(spec.unit)
        .datasource(DATASOURCE)
        .grid_pos(GridPos(h=HEIGHT, w=WIDTH, x=x, y=y))
    )
    for ref, query in zip("ABCD", spec.queries, strict=False):
        panel = panel.with_target(
            Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref)
        )
    return panel


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (a dict)."""
    label_values = "label_values(kubeserve_requests_total{}, {})"
    board = (
        Dashboard("kubeserve / InferenceService")
        .uid(UID)
        .tags(["kubeserve"])
        .description("Traffic, runtime, quality and rollouts of one kubeserve InferenceService.")
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            QueryVariable("namespace")
            .label("Namespace")
            .datasource(DATASOURCE)
            .query(label_values.format("", "namespace"))
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        )
        .with_variable(
            QueryVariable("model")
            .label("InferenceService")
            .datasource(DATASOURCE)
            .query(label_values.format('{namespace="$namespace"}', "model"))
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        )
    )
    y, panel_id = 0, 0
    for title, specs in PANELS:
        panel_id += 1
        board = board.with_row(Row(title).id(panel_id).grid_pos(GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        for index, spec in enumerate(specs):
            panel_id += 1
            x, row_y = (index % 2) * WIDTH, y + (index // 2) * HEIGHT
            board = board.with_panel(_panel(spec, panel_id, x, row_y))
        y += ((len(specs) + 1) // 2) * HEIGHT
    encoded: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return encoded


def render() -> str:
    """The committed JSON text: sorted keys, two-space indent, final newline."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every panel target of a dashboard JSON model."""
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def expand(expr: str, namespace: str, model: str, rate_interval: str = "1m") -> str:
    """``expr`` with the dashboard's variables filled in as Grafana fills them."""
    return (
        expr.replace("$namespace", namespace)
        .replace("$model", model)
        .replace("$__rate_interval", rate_interval)
    )


def generated_files(root: Path) -> dict[Path, Callable[[], str]]:
    """The generated file under ``root`` and the function that renders it."""
    return {root / FILE: render}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``dashboard`` subcommand."""
    parser = sub.add_parser(
        "dashboard", help=f"generate the chart's Grafana dashboard ({FILE}) from its code"
    )
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="repository root (default: current dir)"
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when the file is stale"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write or check the dashboard JSON."""
    from kubeserve.api.commands import stale_files, write_files

    root: Path = args.root
    if args.check:
        stale = stale_files(root, generated_files)
        for path in stale:
            print(f"stale: {path} (run `kubeserve dashboard`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_files(root, generated_files):
        print(f"wrote {path}")
    return 0
