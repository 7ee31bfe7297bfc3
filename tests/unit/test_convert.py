"""``kubeserve convert``: KServe v1beta1 samples (written in the shapes of KServe's
documentation, tests/unit/convert/kserve/) convert, every input leaf is either carried
over or reported, and what the report says was carried over really is in the result."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeserve.api.v1alpha1 import InferenceService
from kubeserve.cli import main
from kubeserve.convert import kserve
from kubeserve.convert.ledger import Path as FieldPath
from kubeserve.convert.ledger import leaves, render

SAMPLES = Path(__file__).resolve().parent / "convert"
CONVERTIBLE = sorted((SAMPLES / "kserve").glob("*.yaml"))
UNCONVERTIBLE = sorted((SAMPLES / "unconvertible").glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    """One sample document."""
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def at(obj: Any, path: FieldPath) -> Any:
    """The value at a path."""
    for part in path:
        obj = obj[part]
    return obj


def parse_target(target: str) -> FieldPath:
    """``spec.predictor.model.env[1]`` -> ("spec", "predictor", "model", "env", 1)."""
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", target):
        parts.append(int(index) if index else name)
    return tuple(parts)


def unaccounted(source: dict[str, Any], conversion: kserve.Conversion) -> list[str]:
    """The input's leaves no note covers (computed here, independently of the ledger)."""
    sources = [note.source for note in conversion.notes]
    return [
        render(leaf)
        for leaf in leaves(source)
        if not any(leaf[: len(src)] == src for src in sources)
    ]


@pytest.mark.parametrize("path", CONVERTIBLE, ids=lambda p: p.stem)
def test_sample_converts_and_no_field_is_dropped_silently(path: Path) -> None:
    source = load(path)
    before = copy.deepcopy(source)
    conversion = kserve.convert(source)
    assert conversion.errors == ()
    assert conversion.result is not None
    InferenceService.from_object(conversion.result)  # kubeserve's own rules accept it
    assert unaccounted(source, conversion) == []
    assert source == before, "the input is never modified"
    for note in conversion.notes:
        if note.outcome == "dropped":
            assert note.reason, render(note.source)
        # what the report calls mapped is in the result, unchanged
        if note.outcome == "mapped" and not note.target.startswith("metadata.annotations."):
            assert at(conversion.result, parse_target(note.target)) == at(source, note.source)


@pytest.mark.parametrize("path", UNCONVERTIBLE, ids=lambda p: p.stem)
def test_unconvertible_inputs_say_why_and_still_account_for_every_field(path: Path) -> None:
    source = load(path)
    conversion = kserve.convert(source)
    assert conversion.result is None
    assert conversion.errors
    assert unaccounted(source, conversion) == []
    assert "NOT converted" in conversion.report()


def converted(name: str) -> tuple[dict[str, Any], kserve.Conversion]:
    """The result and the conversion of one convertible sample."""
    conversion = kserve.convert(load(SAMPLES / "kserve" / f"{name}.yaml"))
    assert conversion.result is not None, conversion.report()
    return conversion.result, conversion


def reasons(conversion: kserve.Conversion) -> dict[str, str]:
    """Dropped or changed field -> reason."""
    return {render(n.source): n.reason for n in conversion.notes if n.outcome != "mapped"}


def test_canary_percent_becomes_a_manual_canary() -> None:
    result, _ = converted("canary")
    assert result["spec"]["rollout"] == {"canaryTrafficPercent": 10}


def test_batcher_latency_is_in_milliseconds_and_its_timeout_is_reported() -> None:
    result, conversion = converted("batcher")
    assert result["spec"]["predictor"]["batcher"] == {"maxBatchSize": 32, "maxLatencyMs": 500}
    assert "spec.predictor.batcher.timeout" in reasons(conversion)
    assert "spec.predictor.timeout" in reasons(conversion)


def test_knative_annotations_set_scaling_and_the_rest_is_reported() -> None:
    result, conversion = converted("knative-autoscaling")
    predictor = result["spec"]["predictor"]
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("concurrency", 5)
    assert predictor["minReplicas"] == 1
    assert "maxReplicas" not in predictor
    assert result["metadata"]["annotations"] == {"team.example.org/owner": "vision"}
    why = reasons(conversion)
    assert "Knative" in why["metadata.annotations.autoscaling.knative.dev/class"]
    assert "scale to zero" in why["spec.predictor.minReplicas"]
    assert "spec.predictor.containerConcurrency" in why


def test_raw_deployment_hpa_annotations_set_metric_and_target() -> None:
    result, _ = converted("raw-hpa")
    predictor = result["spec"]["predictor"]
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("memory", 75)
    assert predictor["maxReplicas"] == 4


def test_transformer_and_explainer_are_reported_with_the_alternative() -> None:
    assert "custom handler" in reasons(converted("transformer")[1])["spec.transformer"]
    assert "explainer" in reasons(converted("explainer")[1])["spec.explainer"]


def test_logger_url_and_mode_become_an_http_sink() -> None:
    """KServe's logger becomes one http sink with the same mode (same CloudEvents)."""
    result, conversion = converted("logger")
    assert result["spec"]["predictor"]["logger"] == {
        "mode": "all",
        "sinks": [{"http": {"url": "http://message-dumper.default/"}}],
    }
    assert not [n for n in conversion.notes if n.outcome == "dropped"]


def test_old_framework_form_and_protocols() -> None:
    result, conversion = converted("xgboost")
    model = result["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "xgboost"}
    assert model["protocolVersion"] == "v2"
    assert "gRPC" in reasons(conversion)["spec.predictor.xgboost.protocolVersion"]
    assert result["spec"]["predictor"]["serviceAccountName"] == "models-reader"
    torchserve = reasons(converted("pytorch-torchserve")[1])
    assert "TorchScript" in torchserve["spec.predictor.pytorch.storageUri"]
    assert "TorchServe" in torchserve["spec.predictor.pytorch.modelClassName"]


def test_custom_container_keeps_what_kubeserve_runs() -> None:
    result, conversion = converted("custom-container")
    (container,) = result["spec"]["predictor"]["containers"]
    assert container["image"] == "example.org/custom-model:v1"
    assert container["env"] == [{"name": "PROTOCOL", "value": "v2"}]
    assert "/v2/health/ready" in reasons(conversion)["spec.predictor.containers[0].readinessProbe"]


def test_fields_unknown_to_the_converter_are_reported() -> None:
    source = load(SAMPLES / "kserve" / "sklearn.yaml")
    source["spec"]["predictor"]["model"]["newModelField"] = {"a": 1}
    source["spec"]["newComponent"] = [1, 2]
    conversion = kserve.convert(source)
    assert conversion.result is not None
    why = reasons(conversion)
    assert "spec.newComponent[0]" in why
    assert "spec.predictor.model.newModelField" in why


def test_a_result_kubeserve_would_refuse_is_an_error_not_yaml() -> None:
    source = load(SAMPLES / "kserve" / "raw-hpa.yaml")
    source["spec"]["predictor"]["minReplicas"] = 9  # above maxReplicas 4
    conversion = kserve.convert(source)
    assert conversion.result is None
    assert any("minReplicas" in error for error in conversion.errors)


def test_cli_prints_yaml_and_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    both = tmp_path / "both.yaml"
    both.write_text("\n---\n".join(p.read_text() for p in (CONVERTIBLE[0], UNCONVERTIBLE[0])))
    assert main(["convert", "-f", str(both)]) == 1
    out, err = capsys.readouterr()
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["InferenceService"]
    assert "NOT converted" in err
    assert ": converted" in err
    assert main(["convert", "-f", str(CONVERTIBLE[0]), "-o", str(tmp_path / "out.yaml")]) == 0
    assert yaml.safe_load((tmp_path / "out.yaml").read_text())["apiVersion"] == (
        "serving.kubeserve.io/v1alpha1"
    )
