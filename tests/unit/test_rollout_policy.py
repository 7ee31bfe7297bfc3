"""Reading the rollout policy from a spec, with the API models' defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kubeserve.rollout.policy import (
    Analysis,
    CustomCheck,
    MirrorSpec,
    Policy,
    Replicas,
    Rollout,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("1m30s", 90),
        ("1.5s", 1.5),
        ("250ms", 0.25),
        ("45", 45),
        (12, 12),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "5 m", "0s", "-5s", "1m 30s"])
def test_parse_duration_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("replicas", "percent", "share"),
    [
        (Replicas(2, 4), 10, Replicas(1, 1)),
        (Replicas(2, 4), 60, Replicas(2, 3)),
        (Replicas(10, 20), 25, Replicas(3, 5)),
        (Replicas(1, 1), 0, Replicas(1, 1)),  # a dark canary still runs one replica
    ],
)
def test_canary_share_of_replicas(replicas: Replicas, percent: int, share: Replicas) -> None:
    assert replicas.share(percent) == share


@pytest.mark.parametrize(
    ("replicas", "serving_ready", "need"),
    [
        (Replicas(2, 4), 3, 3),  # the stable's HPA scaled out: match it
        (Replicas(2, 4), 1, 2),  # never below the newcomer's own minimum
        (Replicas(2, 4), 9, 4),  # nor above its maximum
        (Replicas(0, 0), 0, 1),  # at least one
    ],
)
def test_promotion_size_follows_the_serving_workload_within_bounds(
    replicas: Replicas, serving_ready: int, need: int
) -> None:
    assert replicas.promotion_size(serving_ready) == need


def test_replica_defaults_follow_the_api() -> None:
    assert Replicas.of({}) == Replicas(1, 1)
    assert Replicas.of({"minReplicas": 3}) == Replicas(3, 3)
    assert Replicas.of({"minReplicas": 2, "maxReplicas": 5}) == Replicas(2, 5)


def test_progressive_rollout_gets_the_default_analysis() -> None:
    rollout = Rollout.from_spec({"steps": [10, 50], "interval": "2m"})
    assert rollout.progressive
    assert not rollout.promotes
    assert rollout.interval_seconds == 120
    assert rollout.analysis == Analysis(max_error_rate=0.01, min_requests=10, failure_threshold=2)


def test_manual_canary_has_no_analysis_unless_asked() -> None:
    assert Rollout.from_spec({"canaryTrafficPercent": 10}).analysis is None
    assert not Rollout.from_spec({"canaryTrafficPercent": 10}).promotes
    assert Rollout.from_spec({"canaryTrafficPercent": 100}).promotes
    assert Rollout.from_spec({}).promotes
    custom = Rollout.from_spec(
        {
            "canaryTrafficPercent": 5,
            "historyLimit": 4,
            "analysis": {"maxLatencyP99Ms": 250, "query": "max(x)", "queryMax": 2},
        }
    )
    assert custom.history_limit == 4
    assert custom.analysis is not None
    assert custom.analysis.max_latency_p99_ms == 250
    assert custom.analysis.custom == CustomCheck("max(x)", 2.0)


def test_invalid_rollout_is_refused_with_the_api_message() -> None:
    with pytest.raises(ValidationError, match="not both"):
        Rollout.from_spec({"canaryTrafficPercent": 10, "steps": [20]})
    with pytest.raises(ValidationError, match="strictly increasing"):
        Rollout.from_spec({"steps": [50, 20]})


def test_policy_reads_variants_sorted_and_the_mirror() -> None:
    policy = Policy.from_spec(
        {
            "predictor": {"minReplicas": 1},
            "variants": [
                {"name": "z", "weight": 10, "predictor": {"minReplicas": 2}},
                {
                    "name": "b",
                    "weight": 20,
                    "match": {"headers": {"x-variant": "b", "x-a": "1"}},
                    "predictor": {"minReplicas": 1},
                },
            ],
            "mirror": {"variant": "z", "percent": 5},
        }
    )
    assert [v.name for v in policy.variants] == ["b", "z"]
    assert policy.variants[0].headers == (("x-a", "1"), ("x-variant", "b"))
    assert policy.main_weight == 70
    assert policy.mirror == MirrorSpec("z", 5)
    assert policy.rollout is None
