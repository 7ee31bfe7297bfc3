"""The experiment stage: start, one look per interval, decisions, promotion, restarts.

Counters are handed in as the metric source would read them (randomized traffic of each
arm since the experiment started); the statistics themselves are proven in
test_experiment_simulation.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubeserve.api.v1alpha1 import ExperimentStatus
from kubeserve.experiment.totals import Totals
from kubeserve.plan import Backend
from kubeserve.rollout.analysis import MetricsUnavailable
from kubeserve.rollout.decision import Observed, decide, experiment_request
from kubeserve.rollout.experiment import experiment_message, experiment_transition
from kubeserve.rollout.policy import Policy
from kubeserve.rollout.revision import revision_hash
from kubeserve.rollout.state import (
    ArmRecord,
    ComparisonRecord,
    ExperimentRecord,
    RevisionStatus,
    RolloutState,
    VariantState,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MAIN = {"model": {"storageUri": "s3://m/a"}}
B = {"model": {"storageUri": "s3://m/b"}}
C = {"model": {"storageUri": "s3://m/c"}}
RB, RC = revision_hash(B), revision_hash(C)


def policy(experiment: dict[str, Any], c_weight: int | None = None) -> Policy:
    """Main predictor, variant b (30%, also header-matched), optional c; an experiment."""
    variants: list[dict[str, Any]] = [
        {"name": "b", "weight": 30, "match": {"headers": {"x-variant": "b"}}, "predictor": B}
    ]
    if c_weight is not None:
        variants.append({"name": "c", "weight": c_weight, "predictor": C})
    return Policy.from_spec({"predictor": MAIN, "variants": variants, "experiment": experiment})


def serving(with_c: bool = False) -> RolloutState:
    variants = {"b": VariantState(revision=RB, since=T0, predictor=B)}
    if with_c:
        variants["c"] = VariantState(revision=RC, since=T0, predictor=C)
    return RolloutState(
        stable=RevisionStatus(revision="main1", percent=100, since=T0, predictor=MAIN),
        variants=variants,
    )


def counts(a: tuple[int, int], b: tuple[int, int], **more: tuple[int, int]) -> Observed:
    """Accuracy counters: arm -> (correct, scored)."""
    arms = {"predictor": a, "b": b, **more}
    return Observed(experiment={k: Totals.proportion(*v) for k, v in arms.items()})


ACCURACY = {"metric": "accuracy", "minSamples": 200}


def started(
    spec: dict[str, Any], with_c: bool = False, c_weight: int | None = None
) -> RolloutState:
    return experiment_transition(policy(spec, c_weight), serving(with_c), Observed(), T0).state


def test_the_first_pass_starts_counting_the_weighted_arms() -> None:
    t = experiment_transition(policy(ACCURACY, c_weight=0), serving(with_c=True), Observed(), T0)
    record = t.state.experiment
    assert record is not None
    assert [(a.name, a.revision) for a in record.arms] == [("predictor", "main1"), ("b", RB)]
    assert [c.variant for c in record.comparisons] == ["b"], "c has no weight: not an arm"
    assert record.decision == "Running"
    assert t.events[0].reason == "ExperimentStarted"
    assert t.requeues == (60.0,)
    request = experiment_request(policy(ACCURACY, c_weight=0), t.state, T0)
    assert request is not None
    assert request.arms == (("predictor", "main1"), ("b", RB))
    assert request.since == T0


def test_looks_are_one_interval_apart() -> None:
    state = started(ACCURACY)
    seen = counts((300, 400), (310, 400))
    first = experiment_transition(policy(ACCURACY), state, seen, T0 + timedelta(seconds=60))
    assert first.state.experiment is not None
    assert first.state.experiment.looked_at == T0 + timedelta(seconds=60)
    again = experiment_transition(
        policy(ACCURACY), first.state, counts((1, 1000), (999, 1000)), T0 + timedelta(seconds=80)
    )
    assert again.state == first.state, "no look before the interval is over"
    assert again.requeues == (40.0,)
    assert experiment_request(policy(ACCURACY), first.state, T0 + timedelta(seconds=80)) is None
    assert experiment_request(policy(ACCURACY), first.state, T0 + timedelta(seconds=120))


def test_b_better_wins_with_a_readable_condition_and_report_keeps_routes() -> None:
    state = started(ACCURACY)
    seen = counts((8740, 10000), (9120, 10000))
    decision = decide(policy(ACCURACY), state, seen, T0 + timedelta(minutes=5))
    record = decision.state.experiment
    assert record is not None
    assert (record.decision, record.winner) == ("BWins", "b")
    assert record.decided_at == T0 + timedelta(minutes=5)
    (comparison,) = record.comparisons
    assert comparison.p_value < 0.05
    assert comparison.lower is not None
    assert comparison.lower > 0
    condition = next(c for c in decision.conditions if c.type == "ExperimentConcluded")
    assert (condition.status, condition.reason) == ("True", "BWins")
    assert condition.message.startswith("b: accuracy 0.912 vs 0.874, +0.038 [0.0")
    assert "always-valid (BWins, 10000/10000 samples)" in condition.message
    assert any(e.reason == "ExperimentConcluded" for e in decision.events)
    weights = {b.component: b.weight for b in decision.plan.backends}
    assert weights == {"predictor": 70, "b": 30}, "report: routes unchanged"
    ExperimentStatus.model_validate(record.to_status())


def test_promote_sends_all_unmatched_traffic_to_the_winner() -> None:
    spec = {**ACCURACY, "onDecision": "promote"}
    state = started(spec)
    decision = decide(
        policy(spec), state, counts((8740, 10000), (9120, 10000)), T0 + timedelta(minutes=5)
    )
    assert decision.state.experiment is not None
    assert decision.state.experiment.promoted
    assert decision.plan.backends == (Backend("b", RB, 100),)
    assert [r.backend.component for r in decision.plan.header_routes] == ["b"]
    assert any(e.reason == "ExperimentPromoted" for e in decision.events)
    later = decide(
        policy(spec),
        decision.state,
        counts((8740, 10000), (9120, 10000)),
        T0 + timedelta(minutes=6),
    )
    assert later.plan.backends == (Backend("b", RB, 100),), "the promotion stays"
    assert not any(e.reason == "ExperimentPromoted" for e in later.events)


def test_a_better_promoted_takes_the_variants_out_of_the_default_route() -> None:
    spec = {**ACCURACY, "onDecision": "promote"}
    decision = decide(
        policy(spec), started(spec), counts((9120, 10000), (8740, 10000)), T0 + timedelta(minutes=5)
    )
    assert decision.state.experiment is not None
    assert decision.state.experiment.winner == "predictor"
    assert decision.state.experiment.decision == "AWins"
    assert decision.plan.backends == (Backend("predictor", "main1", 100),)


def test_a_a_runs_then_ends_no_difference_at_max_duration() -> None:
    spec = {**ACCURACY, "maxDuration": "1h"}
    state = started(spec)
    t = experiment_transition(
        policy(spec), state, counts((450, 500), (452, 500)), T0 + timedelta(minutes=30)
    )
    assert t.state.experiment is not None
    assert t.state.experiment.decision == "Running"
    end = experiment_transition(
        policy(spec), t.state, counts((900, 1000), (899, 1000)), T0 + timedelta(hours=1)
    )
    assert end.state.experiment is not None
    assert end.state.experiment.decision == "NoDifference"
    assert end.state.experiment.winner is None


def test_too_few_samples_at_max_duration_is_inconclusive() -> None:
    spec = {**ACCURACY, "maxDuration": "1h"}
    end = experiment_transition(
        policy(spec), started(spec), counts((90, 100), (50, 100)), T0 + timedelta(hours=1)
    )
    assert end.state.experiment is not None
    assert end.state.experiment.decision == "Inconclusive"


def test_unavailable_counters_keep_the_numbers_and_say_why() -> None:
    state = started(ACCURACY)
    looked = experiment_transition(
        policy(ACCURACY), state, counts((300, 400), (310, 400)), T0 + timedelta(minutes=1)
    ).state
    broken = Observed(experiment=MetricsUnavailable("prometheus: timeout"))
    t = experiment_transition(policy(ACCURACY), looked, broken, T0 + timedelta(minutes=2))
    assert t.state.experiment is not None
    assert looked.experiment is not None
    assert t.state.experiment.message == "arm counters unavailable: prometheus: timeout"
    assert t.state.experiment.arms == looked.experiment.arms


def test_a_changed_spec_or_revision_restarts_the_experiment() -> None:
    state = started(ACCURACY)
    decided = decide(
        policy(ACCURACY), state, counts((8740, 10000), (9120, 10000)), T0 + timedelta(minutes=5)
    ).state
    stricter = {**ACCURACY, "alpha": 0.01}
    t = experiment_transition(policy(stricter), decided, Observed(), T0 + timedelta(minutes=6))
    assert t.state.experiment is not None
    assert t.state.experiment.decision == "Running"
    assert t.state.experiment.started_at == T0 + timedelta(minutes=6)
    gone = experiment_transition(
        Policy.from_spec({"predictor": MAIN}), decided, Observed(), T0 + timedelta(minutes=6)
    )
    assert gone.state.experiment is None


def test_several_variants_share_alpha_and_the_best_winner_is_named() -> None:
    spec = {**ACCURACY}
    state = started(spec, with_c=True, c_weight=30)
    seen = counts((8740, 10000), (9120, 10000), c=(9300, 10000))
    t = experiment_transition(policy(spec, c_weight=30), state, seen, T0 + timedelta(minutes=5))
    record = t.state.experiment
    assert record is not None
    assert [c.decision for c in record.comparisons] == ["BWins", "BWins"]
    assert record.winner == "c"


def test_the_message_reads_like_the_issue_asks() -> None:
    record = ExperimentRecord(
        key="k",
        metric="accuracy",
        started_at=T0,
        arms=[
            ArmRecord(name="predictor", samples=1000, estimate=0.874),
            ArmRecord(name="b", samples=1000, estimate=0.912),
        ],
        comparisons=[
            ComparisonRecord(
                variant="b",
                difference=0.038,
                lower=0.011,
                upper=0.065,
                p_value=0.004,
                decision="BWins",
            )
        ],
    )
    assert experiment_message(record) == (
        "b: accuracy 0.912 vs 0.874, +0.038 [0.011, 0.065], p=0.004 always-valid "
        "(BWins, 1000/1000 samples)"
    )


def test_the_state_round_trips_through_status() -> None:
    spec = {**ACCURACY, "minDetectableEffect": 0.02}
    looked = experiment_transition(
        policy(spec), started(spec), counts((300, 400), (310, 400)), T0 + timedelta(minutes=1)
    )
    record = looked.state.experiment
    assert record is not None
    assert record.looked_at == T0 + timedelta(minutes=1)
    assert record.comparisons[0].samples_needed is not None
    assert record.comparisons[0].samples_needed > 0
    assert "more samples needed" in record.message
    again = RolloutState.from_status({"rollout": looked.state.to_status()})
    assert again == looked.state
