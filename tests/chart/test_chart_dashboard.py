"""The chart's Grafana dashboard ConfigMap, rendered by the real helm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubeserve import dashboard
from kubeserve.chart import helm


def dashboards(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ConfigMaps labelled for Grafana's dashboard sidecar."""
    return [
        obj
        for obj in objects
        if obj["kind"] == "ConfigMap"
        and obj["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]


def test_default_values_render_no_dashboard(render: Any) -> None:
    assert dashboards(render()) == []


def test_dashboard_configmap_carries_the_committed_json(render: Any, chart: Path) -> None:
    (configmap,) = dashboards(render({"metrics.grafanaDashboard.enabled": "true"}))
    assert configmap["metadata"]["namespace"] == helm.NAMESPACE
    assert configmap["metadata"]["labels"]["app.kubernetes.io/name"] == "kubeserve"
    assert "annotations" not in configmap["metadata"]
    (text,) = configmap["data"].values()
    assert text + "\n" == (chart / dashboard.FILE).read_text()
    assert json.loads(text)["uid"] == dashboard.UID


def test_dashboard_namespace_labels_and_annotations_come_from_values(render: Any) -> None:
    (configmap,) = dashboards(
        render(
            {
                "metrics.grafanaDashboard.enabled": "true",
                "metrics.grafanaDashboard.namespace": "monitoring",
                "metrics.grafanaDashboard.labels.team": "ml",
                "metrics.grafanaDashboard.annotations.grafana_folder": "Serving",
            }
        )
    )
    meta = configmap["metadata"]
    assert meta["namespace"] == "monitoring"
    assert meta["labels"]["team"] == "ml"
    assert meta["labels"]["grafana_dashboard"] == "1"
    assert meta["annotations"] == {"grafana_folder": "Serving"}
