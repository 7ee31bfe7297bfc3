"""spec.experiment and status.experiment: defaults, refusals with clear words, the CRD rules."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubeserve.api.crd import openapi_schema
from kubeserve.api.v1alpha1 import InferenceService, InferenceServiceStatus

PREDICTOR = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://m/iris/v1"}}


def isvc(experiment: dict[str, Any], weights: tuple[int, ...] = (50,)) -> dict[str, Any]:
    """An InferenceService with variants b, c, ... of these weights and an experiment."""
    variants = [
        {"name": chr(ord("b") + i), "weight": w, "predictor": PREDICTOR}
        for i, w in enumerate(weights)
    ]
    return {
        "metadata": {"name": "iris"},
        "spec": {"predictor": PREDICTOR, "variants": variants, "experiment": experiment},
    }


def refusal(obj: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        InferenceService.model_validate(obj)
    return str(caught.value)


def test_defaults_and_directions() -> None:
    spec = InferenceService.model_validate(isvc({"metric": "errorRate"})).spec
    assert spec.experiment is not None
    experiment = spec.experiment
    assert (experiment.alpha, experiment.min_samples, experiment.max_duration) == (
        0.05,
        100,
        "168h",
    )
    assert experiment.on_decision == "report"
    assert not experiment.higher_is_better
    assert experiment.binary
    for metric, higher, binary in [
        ("accuracy", True, True),
        ("conversion", True, True),
        ("reward", True, False),
        ("latencyMean", False, False),
    ]:
        parsed = InferenceService.model_validate(isvc({"metric": metric})).spec.experiment
        assert parsed is not None
        assert (parsed.higher_is_better, parsed.binary) == (higher, binary)
    lower = isvc({"metric": "accuracy", "direction": "lower"})
    parsed = InferenceService.model_validate(lower).spec.experiment
    assert parsed is not None
    assert not parsed.higher_is_better


@pytest.mark.parametrize(
    ("experiment", "weights", "message"),
    [
        ({"metric": "accuracy"}, (0,), "experiment needs a variant with weight > 0"),
        ({"metric": "accuracy"}, (60, 40), "experiment needs traffic on the main predictor"),
        ({"metric": "custom", "direction": "higher"}, (50,), "experiment.custom (numerator"),
        (
            {"metric": "accuracy", "custom": {"numerator": "a", "denominator": "b"}},
            (50,),
            "is set exactly when experiment.metric is custom",
        ),
        (
            {"metric": "custom", "custom": {"numerator": "a", "denominator": "b"}},
            (50,),
            "experiment.direction (higher or lower) is required for a custom metric",
        ),
        (
            {"metric": "accuracy", "minDetectableEffect": 2},
            (50,),
            "must be below 1, e.g. 0.02",
        ),
        ({"metric": "accuracy", "alpha": 0.5}, (50,), "less than or equal to 0.2"),
        ({"metric": "accuracy", "minSamples": 5}, (50,), "greater than or equal to 30"),
        ({"metric": "accuracy", "maxDuration": "a week"}, (50,), "maxDuration"),
        ({"metric": "latencyP99"}, (50,), "metric"),
        ({"metric": "accuracy", "onDecision": "rollback"}, (50,), "onDecision"),
    ],
)
def test_invalid_experiments_are_refused_with_a_clear_message(
    experiment: dict[str, Any], weights: tuple[int, ...], message: str
) -> None:
    assert message in refusal(isvc(experiment, weights))


def test_a_mean_metric_takes_any_positive_effect() -> None:
    obj = isvc({"metric": "reward", "minDetectableEffect": 2.5, "onDecision": "promote"})
    parsed = InferenceService.model_validate(obj).spec.experiment
    assert parsed is not None
    assert parsed.min_detectable_effect == 2.5


def test_the_crd_carries_the_rules_and_enums() -> None:
    spec = openapi_schema()["properties"]["spec"]
    experiment = spec["properties"]["experiment"]
    assert experiment["properties"]["metric"]["enum"] == [
        "errorRate",
        "latencyMean",
        "accuracy",
        "reward",
        "conversion",
        "custom",
    ]
    messages = {r["message"] for r in experiment["x-kubernetes-validations"]}
    assert "experiment.direction (higher or lower) is required for a custom metric" in messages
    spec_rules = {r["message"]: r["rule"] for r in spec["x-kubernetes-validations"]}
    needs_weight = next(m for m in spec_rules if m.startswith("experiment needs a variant"))
    assert "v.weight > 0" in spec_rules[needs_weight]


def test_status_experiment_parses_what_the_operator_writes() -> None:
    status = InferenceServiceStatus.model_validate(
        {
            "experiment": {
                "metric": "accuracy",
                "startedAt": "2026-01-01T00:00:00Z",
                "decision": "BWins",
                "decidedAt": "2026-01-01T01:00:00Z",
                "winner": "b",
                "promoted": True,
                "message": "b: accuracy 0.912 vs 0.874, +0.038 [0.011, 0.065], p=0.004 "
                "always-valid",
                "arms": [
                    {
                        "name": "predictor",
                        "samples": 1000,
                        "estimate": 0.874,
                        "lower": 0.84,
                        "upper": 0.9,
                    },
                    {"name": "b", "samples": 1000, "estimate": 0.912},
                ],
                "comparisons": [
                    {
                        "variant": "b",
                        "difference": 0.038,
                        "lower": 0.011,
                        "upper": 0.065,
                        "pValue": 0.004,
                        "decision": "BWins",
                        "samplesNeeded": 0,
                    }
                ],
            }
        }
    )
    assert status.experiment is not None
    assert status.experiment.comparisons is not None
    assert status.experiment.comparisons[0].p_value == 0.004
