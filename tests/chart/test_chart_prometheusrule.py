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


RULES = (
    "KubeserveErrorRatioHigh",
    "KubeserveInputDrift",
    "KubeserveLatencyP99High",
    "KubeserveModelQualityDrop",
    "KubeserveNoReadyReplicas",
    "KubeservePayloadEventsDropped",
    "KubeserveRolledBack",
    "KubeserveRolloutStuck",
    "isvc_revision:kubeserve_feedback_accuracy:ratio1h",
    "isvc_revision:kubeserve_feedback_f1_macro:ratio1h",
    "isvc_revision:kubeserve_feedback_mae:1h",
    "isvc_revision:kubeserve_feedback_rmse:1h",
    "isvc_revision:kubeserve_feedback_scored:increase1h",
    "isvc_revision:kubeserve_payload_events_dropped:rate5m",
    "isvc_revision:kubeserve_request_duration_seconds:p50_rate5m",
    "isvc_revision:kubeserve_request_duration_seconds:p99_rate5m",
    "isvc_revision:kubeserve_request_errors:ratio_rate5m",
    "isvc_revision:kubeserve_requests:rate5m",
    "isvc_revision_class:kubeserve_feedback_actual:increase1h",
    "isvc_revision_class:kubeserve_feedback_correct:increase1h",
    "isvc_revision_class:kubeserve_feedback_f1:ratio1h",
    "isvc_revision_class:kubeserve_feedback_precision:ratio1h",
    "isvc_revision_class:kubeserve_feedback_predicted:increase1h",
    "isvc_revision_class:kubeserve_feedback_recall:ratio1h",
)
"""Every recording rule and alert the chart ships."""


def test_default_values_render_no_rule(render: Any) -> None:
    assert [obj for obj in render() if obj["kind"] == "PrometheusRule"] == []


def test_rule_object_metadata(chart_prometheus_rule: dict[str, Any]) -> None:
    rule = chart_prometheus_rule
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == helm.NAMESPACE
    assert rule["metadata"]["labels"]["release"] == "prom"
    assert rule["metadata"]["labels"]["app.kubernetes.io/name"] == "kubeserve"
    assert sorted(rules_by_name(rule)) == sorted(RULES)


def test_promtool_check_rules(promtool_binary: Path, chart_rules_file: Path) -> None:
    output = promtool(promtool_binary, "check", "rules", str(chart_rules_file))
    assert f"SUCCESS: {len(RULES)} rules found" in output


def test_thresholds_come_from_values(render: Any) -> None:
    custom = {
        "metrics.prometheusRule.enabled": "true",
        "metrics.prometheusRule.errorRatio.threshold": "0.2",
        "metrics.prometheusRule.drift.for": "1h",
        "metrics.prometheusRule.latencyP99.severity": "page",
        "metrics.prometheusRule.quality.minAccuracy": "0.9",
        "metrics.prometheusRule.quality.minScored": "50",
        "metrics.prometheusRule.rolloutStuck.for": "6h",
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
    quality = rules["KubeserveModelQualityDrop"]["expr"]
    assert "ratio1h < 0.9\n" in quality
    assert quality.rstrip().endswith(">= 50")
    assert rules["KubeserveRolloutStuck"]["for"] == "6h"
    assert "longer than 6h." in rules["KubeserveRolloutStuck"]["annotations"]["description"]


def selector(labels: dict[str, str]) -> str:
    """``{a="b", ...}`` of a label set."""
    return "{" + ", ".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


def series(name: str, labels: str, values: str) -> dict[str, str]:
    """One promtool input series."""
    return {"series": f"{name}{{{labels}}}", "values": values}


def runtime_series() -> list[dict[str, str]]:
    """Revision ``good``: 600 requests a minute, all 200 and faster than 50 ms. Revision
    ``bad``: 540 200s and 60 500s a minute (10% errors, over the 5% default), half of
    its requests in (0.5 s, 2.5 s] (p99 2.46 s, over the 1 s default). Feature
    ``petal_length`` drifts (PSI 0.4 > 0.25), ``sepal_width`` does not. Deployment
    ``iris-predictor-bad`` wants 2 replicas and has none; ``iris-predictor-good`` has 2;
    ``iris-predictor-old`` is scaled to 0 (a rolled-back canary: no alert). The payload
    logger of ``bad`` drops 30 events a minute (queue_full) and none for send_failed;
    its drop counters carry no model label (the runtime's identity series has it)."""
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
    pod = 'namespace="ml",serving_kubeserve_io_variant="predictor",pod="b0"'
    inputs.append(series("kubeserve_model_load_seconds", f'{bad},pod="b0",format="custom"', "2x60"))
    for reason, values in (("queue_full", "0+30x60"), ("send_failed", "0x60")):
        labels = f'{pod},sink="http",reason="{reason}"'
        inputs.append(series("kubeserve_payload_events_dropped_total", labels, values))
    return inputs


FEEDBACK = {
    # (version, predicted, actual): scored per minute
    ("bad", "setosa", "setosa"): "6",
    ("bad", "setosa", "versicolor"): "3",
    ("bad", "versicolor", "versicolor"): "1",
    ("bad", "virginica", "versicolor"): "2",
    ("good", "setosa", "setosa"): "10",
    ("few", "setosa", "virginica"): "0.1",
}
"""Classification feedback. ``bad``: 12 scored a minute, 7 right (accuracy 0.583 < 0.8);
setosa precision 6/9, recall 6/6, F1 12/15; versicolor 1/1, 1/6, 2/7; virginica
predicted twice, never right and never true (precision 0, F1 0, no recall).
``good``: all right. ``few``: all wrong, but 6 an hour (< minScored 20): no alert."""


def feedback_series() -> list[dict[str, str]]:
    """The feedback families as a scrape of the scoring replica labels them; ``variant``
    is the predicting variant, the target's ``serving_kubeserve_io_variant`` the scorer's."""
    scorer = 'namespace="ml",pod="s0",serving_kubeserve_io_variant="predictor"'
    inputs: list[dict[str, str]] = []
    correct: dict[tuple[str, str], float] = {}
    for (version, predicted, actual), per_minute in FEEDBACK.items():
        labels = f'{scorer},model="iris",version="{version}",variant="predictor"'
        inputs.append(
            series(
                "kubeserve_feedback_total",
                f'{labels},predicted="{predicted}",actual="{actual}"',
                f"0+{per_minute}x80",
            )
        )
        if predicted == actual:
            correct[(labels, predicted)] = float(per_minute)
    for (labels, klass), rate in correct.items():
        inputs.append(
            series(
                "kubeserve_feedback_correct_total",
                f'{labels},class="{klass}"',
                f"0+{rate:g}x80",
            )
        )
    regression = f'{scorer},model="iris",version="reg",variant="predictor"'
    for family, per_minute in (
        ("absolute_error_sum", "5"),
        ("squared_error_sum", "4"),
        ("absolute_error_count", "10"),
        ("squared_error_count", "10"),
    ):
        inputs.append(series(f"kubeserve_feedback_{family}", regression, f"0+{per_minute}x80"))
    return inputs


def operator_series() -> list[dict[str, str]]:
    """The operator's condition gauge: ``iris`` rolled back from minute 10 on, ``wine``
    progressing for 200 minutes (over the 2h default), neither otherwise."""
    inputs: list[dict[str, str]] = []
    for name, type_, values in (
        ("iris", "RolledBack", "0x9 1x190"),
        ("iris", "RolloutProgressing", "0x200"),
        ("wine", "RolledBack", "0x200"),
        ("wine", "RolloutProgressing", "1x200"),
    ):
        labels = (
            f'job="kubeserve",instance="10.0.0.5:8080",namespace="ml",name="{name}",type="{type_}"'
        )
        inputs.append(series("kubeserve_inferenceservice_condition", labels, values))
    return inputs


def unit_tests(rules: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Input series (one sample a minute) and what the rules must make of them."""
    inputs = runtime_series() + feedback_series() + operator_series()
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
    feedback = {"namespace": "ml", "model": "iris", "variant": "predictor"}
    drops = {**bad_labels, "sink": "http", "reason": "queue_full"}
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
        "KubeserveModelQualityDrop": [
            alert(
                "KubeserveModelQualityDrop",
                {**feedback, "version": "bad"},
                "ml/iris revision bad: accuracy 58.33% on ground truth",
            )
        ],
        "KubeservePayloadEventsDropped": [
            alert(
                "KubeservePayloadEventsDropped",
                drops,
                "ml/iris revision bad: payload log drops 0.50 events/s (http, queue_full)",
            )
        ],
        "KubeserveRolledBack": [
            alert(
                "KubeserveRolledBack",
                {"namespace": "ml", "name": "iris"},
                "ml/iris: the canary was rolled back",
            )
        ],
        "KubeserveRolloutStuck": [
            alert(
                "KubeserveRolloutStuck",
                {"namespace": "ml", "name": "wine"},
                "ml/wine: rollout progressing for too long",
            )
        ],
    }
    quiet_until = {  # the last minute at which each alert is not firing yet (its `for`)
        "KubeserveErrorRatioHigh": "5m",
        "KubeserveLatencyP99High": "10m",
        "KubeserveNoReadyReplicas": "4m",
        "KubeserveInputDrift": "29m",
        "KubeserveModelQualityDrop": "15m",
        "KubeservePayloadEventsDropped": "1m",
        "KubeserveRolledBack": "8m",
        "KubeserveRolloutStuck": "119m",
    }
    firing_at = {"KubeserveRolloutStuck": "130m"}
    alert_tests: list[dict[str, Any]] = []
    for name, expected in firing.items():
        alert_tests.append({"eval_time": quiet_until[name], "alertname": name, "exp_alerts": []})
        at = firing_at.get(name, "40m")
        alert_tests.append({"eval_time": at, "alertname": name, "exp_alerts": expected})
    good_labels = {**revision, "version": "good"}
    fb_bad = {**feedback, "version": "bad"}
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
        (
            "isvc_revision:kubeserve_payload_events_dropped:rate5m",
            [(drops, 0.5), ({**drops, "reason": "send_failed"}, 0)],
        ),
        (
            "isvc_revision:kubeserve_feedback_scored:increase1h",
            [
                (fb_bad, 240),
                ({**feedback, "version": "good"}, 200),
                ({**feedback, "version": "few"}, 2),
            ],
        ),
        (
            "isvc_revision:kubeserve_feedback_accuracy:ratio1h",
            [
                (fb_bad, 7 / 12),
                ({**feedback, "version": "good"}, 1),
                ({**feedback, "version": "few"}, 0),
            ],
        ),
        (
            'isvc_revision_class:kubeserve_feedback_precision:ratio1h{version="bad"}',
            [
                ({**fb_bad, "class": "setosa"}, 6 / 9),
                ({**fb_bad, "class": "versicolor"}, 1),
                ({**fb_bad, "class": "virginica"}, 0),
            ],
        ),
        (
            'isvc_revision_class:kubeserve_feedback_recall:ratio1h{version="bad"}',
            [({**fb_bad, "class": "setosa"}, 1), ({**fb_bad, "class": "versicolor"}, 1 / 6)],
        ),
        (
            'isvc_revision_class:kubeserve_feedback_f1:ratio1h{version="bad"}',
            [
                ({**fb_bad, "class": "setosa"}, 12 / 15),
                ({**fb_bad, "class": "versicolor"}, 2 / 7),
                ({**fb_bad, "class": "virginica"}, 0),
            ],
        ),
        (
            'isvc_revision:kubeserve_feedback_f1_macro:ratio1h{version="bad"}',
            [(fb_bad, (12 / 15 + 2 / 7) / 3)],
        ),
        ("isvc_revision:kubeserve_feedback_mae:1h", [({**feedback, "version": "reg"}, 0.5)]),
        ("isvc_revision:kubeserve_feedback_rmse:1h", [({**feedback, "version": "reg"}, 0.4**0.5)]),
    ]
    expr_tests = [
        {
            "expr": expr,
            "eval_time": "20m",
            "exp_samples": [
                {"labels": expr.split("{")[0] + selector(labels), "value": value}
                for labels, value in samples
            ],
        }
        for expr, samples in expressions
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
