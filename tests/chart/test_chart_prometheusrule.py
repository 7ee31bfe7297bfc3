"""The chart's PrometheusRule: rendered by the real helm, checked and unit-tested by the
real promtool (``promtool check rules``, ``promtool test rules``).

The rules are taken from the rendered object (``spec.groups`` is a Prometheus rule file's
``groups``), so what is tested is what a user installs. The unit tests feed input series
shaped like the runtime's metrics as a Kubernetes scrape labels them (and
kube-state-metrics' Deployment series) and assert which alerts fire, with which labels
and annotations, and what the recording rules compute.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from kubeserve.chart import helm

POD = 'namespace="ml",model="iris",serving_kubeserve_io_variant="predictor"'
"""Target labels of a runtime pod, plus the runtime's own ``model``."""


def promtool(binary: Path, *args: str) -> str:
    """Run promtool; return its output, failing the test with it when promtool fails."""
    result = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, check=False, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def rules_by_name(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every rule of the PrometheusRule by its record or alert name."""
    return {
        item.get("record") or item["alert"]: item
        for group in rule["spec"]["groups"]
        for item in group["rules"]
    }


def expand(text: str, labels: dict[str, str], value: str = "") -> str:
    """An annotation with ``{{ $labels.x }}`` and ``{{ $value }}`` filled in."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda match: labels[match[1]], text)
    return text.replace("{{ $value }}", value)


def test_default_values_render_no_rule(render: Any) -> None:
    assert [obj for obj in render() if obj["kind"] == "PrometheusRule"] == []


def test_rule_object_metadata(chart_prometheus_rule: dict[str, Any]) -> None:
    rule = chart_prometheus_rule
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == helm.NAMESPACE
    assert rule["metadata"]["labels"]["release"] == "prom"
    assert rule["metadata"]["labels"]["app.kubernetes.io/name"] == "kubeserve"
    assert sorted(rules_by_name(rule)) == [
        "KubeserveErrorRatioHigh",
        "KubeserveInputDrift",
        "KubeserveLatencyP99High",
        "KubeserveNoReadyReplicas",
        "isvc_revision:kubeserve_request_duration_seconds:p50_rate5m",
        "isvc_revision:kubeserve_request_duration_seconds:p99_rate5m",
        "isvc_revision:kubeserve_request_errors:ratio_rate5m",
        "isvc_revision:kubeserve_requests:rate5m",
    ]


def test_promtool_check_rules(promtool_binary: Path, chart_rules_file: Path) -> None:
    output = promtool(promtool_binary, "check", "rules", str(chart_rules_file))
    assert "SUCCESS: 8 rules found" in output


def test_thresholds_come_from_values(render: Any) -> None:
    custom = {
        "metrics.prometheusRule.enabled": "true",
        "metrics.prometheusRule.errorRatio.threshold": "0.2",
        "metrics.prometheusRule.drift.for": "1h",
        "metrics.prometheusRule.latencyP99.severity": "page",
    }
    (rule,) = [obj for obj in render(custom) if obj["kind"] == "PrometheusRule"]
    rules = rules_by_name(rule)
    assert rules["KubeserveErrorRatioHigh"]["expr"].endswith("> 0.2")
    assert (
        "more than 0.2 of its requests"
        in (rules["KubeserveErrorRatioHigh"]["annotations"]["description"])
    )
    assert rules["KubeserveInputDrift"]["for"] == "1h"
    assert rules["KubeserveLatencyP99High"]["labels"] == {"severity": "page"}


def selector(labels: dict[str, str]) -> str:
    """``{a="b", ...}`` of a label set."""
    return "{" + ", ".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


def series(name: str, labels: str, values: str) -> dict[str, str]:
    """One promtool input series."""
    return {"series": f"{name}{{{labels}}}", "values": values}


def unit_tests(rules: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Input series (one sample a minute) and what the rules must make of them.

    Revision ``good``: 600 requests a minute, all 200 and faster than 50 ms. Revision
    ``bad``: 540 200s and 60 500s a minute (10% errors, over the 5% default), half of
    its requests in (0.5 s, 2.5 s] (p99 2.46 s, over the 1 s default). Feature
    ``petal_length`` drifts (PSI 0.4 > 0.25), ``sepal_width`` does not. Deployment
    ``iris-predictor-bad`` wants 2 replicas and has none; ``iris-predictor-good`` has 2;
    ``iris-predictor-old`` is scaled to 0 (a rolled-back canary: no alert).
    """
    good, bad = f'{POD},version="good"', f'{POD},version="bad"'
    inputs = [
        series(
            "kubeserve_requests_total", f'{good},pod="g0",protocol="v2",status="200"', "0+600x60"
        ),
        series(
            "kubeserve_requests_total", f'{bad},pod="b0",protocol="v2",status="200"', "0+540x60"
        ),
        series("kubeserve_requests_total", f'{bad},pod="b0",protocol="v2",status="500"', "0+60x60"),
    ]
    for le in ("0.05", "0.5", "2.5", "+Inf"):
        bucket = "kubeserve_request_duration_seconds_bucket"
        inputs.append(series(bucket, f'{good},pod="g0",protocol="v2",le="{le}"', "0+600x60"))
        slow = "0+300x60" if le in ("0.05", "0.5") else "0+600x60"
        inputs.append(series(bucket, f'{bad},pod="b0",protocol="v2",le="{le}"', slow))
    for feature, psi in (("petal_length", "0.4"), ("sepal_width", "0.05")):
        inputs.append(
            series("kubeserve_input_drift_psi", f'{bad},pod="b0",feature="{feature}"', f"{psi}x60")
        )
    for name, wanted, available in (("bad", 2, 0), ("good", 2, 2), ("old", 0, 0)):
        deployment = f'namespace="ml",deployment="iris-predictor-{name}"'
        inputs += [
            series("kube_deployment_spec_replicas", deployment, f"{wanted}x60"),
            series("kube_deployment_status_replicas_available", deployment, f"{available}x60"),
            series(
                "kube_deployment_labels",
                f'{deployment},label_serving_kubeserve_io_inferenceservice="iris",'
                f'label_serving_kubeserve_io_revision="{name}",'
                'label_serving_kubeserve_io_variant="predictor"',
                "1x60",
            ),
        ]

    revision = {"namespace": "ml", "model": "iris", "serving_kubeserve_io_variant": "predictor"}
    bad_labels = {**revision, "version": "bad"}

    def alert(name: str, labels: dict[str, str], summary: str, value: str = "") -> dict[str, Any]:
        annotations = rules[name]["annotations"]
        return {
            "exp_labels": {**labels, "severity": rules[name]["labels"]["severity"]},
            "exp_annotations": {
                "summary": summary,
                "description": expand(annotations["description"], labels, value),
            },
        }

    deployment_labels = {
        "namespace": "ml",
        "deployment": "iris-predictor-bad",
        "label_serving_kubeserve_io_inferenceservice": "iris",
        "label_serving_kubeserve_io_revision": "bad",
        "label_serving_kubeserve_io_variant": "predictor",
    }
    drift_labels = {**bad_labels, "feature": "petal_length"}
    firing = {
        "KubeserveErrorRatioHigh": [
            alert(
                "KubeserveErrorRatioHigh", bad_labels, "ml/iris revision bad: 10% of requests fail"
            )
        ],
        "KubeserveLatencyP99High": [
            alert("KubeserveLatencyP99High", bad_labels, "ml/iris revision bad: p99 latency 2.46s")
        ],
        "KubeserveNoReadyReplicas": [
            alert(
                "KubeserveNoReadyReplicas",
                deployment_labels,
                "ml/iris revision bad: no ready replica",
                value="2",
            )
        ],
        "KubeserveInputDrift": [
            alert(
                "KubeserveInputDrift",
                drift_labels,
                "ml/iris revision bad: input feature petal_length drifted (PSI 0.40)",
            )
        ],
    }
    pending_until = {  # the last minute at which each alert is still pending (its `for`)
        "KubeserveErrorRatioHigh": "5m",
        "KubeserveLatencyP99High": "10m",
        "KubeserveNoReadyReplicas": "4m",
        "KubeserveInputDrift": "29m",
    }
    alert_tests: list[dict[str, Any]] = []
    for name, expected in firing.items():
        alert_tests.append({"eval_time": pending_until[name], "alertname": name, "exp_alerts": []})
        alert_tests.append({"eval_time": "40m", "alertname": name, "exp_alerts": expected})
    good_labels = {**revision, "version": "good"}
    expressions: list[tuple[str, list[tuple[dict[str, str], float]]]] = [
        ("isvc_revision:kubeserve_requests:rate5m", [(good_labels, 10), (bad_labels, 10)]),
        (
            "isvc_revision:kubeserve_request_errors:ratio_rate5m",
            [(good_labels, 0), (bad_labels, 0.1)],
        ),
        (
            "isvc_revision:kubeserve_request_duration_seconds:p50_rate5m",
            [(good_labels, 0.025), (bad_labels, 0.05)],
        ),
        (
            "isvc_revision:kubeserve_request_duration_seconds:p99_rate5m",
            [(good_labels, 0.0495), (bad_labels, 2.46)],
        ),
    ]
    expr_tests = [
        {
            "expr": name,
            "eval_time": "20m",
            "exp_samples": [
                {"labels": name + selector(labels), "value": value} for labels, value in samples
            ],
        }
        for name, samples in expressions
    ]
    return [
        {
            "interval": "1m",
            "input_series": inputs,
            "alert_rule_test": alert_tests,
            "promql_expr_test": expr_tests,
        }
    ]


def test_promtool_test_rules(
    promtool_binary: Path, chart_prometheus_rule: dict[str, Any], chart_rules_file: Path
) -> None:
    """Which alerts fire on the input series, with which labels and annotations, and
    what the recording rules record."""
    test_file = chart_rules_file.with_name("kubeserve-rules.test.yaml")
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [chart_rules_file.name],
                "evaluation_interval": "1m",
                "fuzzy_compare": True,
                "tests": unit_tests(rules_by_name(chart_prometheus_rule)),
            }
        )
    )
    output = promtool(promtool_binary, "test", "rules", str(test_file))
    assert "SUCCESS" in output
