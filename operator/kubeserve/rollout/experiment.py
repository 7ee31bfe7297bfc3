"""The A/B experiment stage: arms' counters in, estimates, intervals and a decision out.

Arm A is the main predictor's stable revision, each variant with a weight above zero is
an arm B; zero-weight variants (header match only) are not arms. The arms' counters
(:attr:`Observed.experiment`) must count randomized traffic only: a header-matched
request chose its arm, so counting it would bias the comparison (the metric source
leaves those requests out, see :mod:`kubeserve.experiment.source`).

Rules:

- the experiment is keyed by a hash of its spec and the arms' revisions; a change of
  either restarts it (new start time, counters counted from then, Running);
- it looks once per rollout interval (the schedule the simulations prove the test on);
  between looks the state stays and the stage asks to run again at the next look;
- each variant is compared with the main predictor by
  :func:`kubeserve.experiment.sequential.compare`, at alpha divided by the number of
  variants (Bonferroni), so the chance of any false winner stays at most alpha;
- overall: BWins as soon as one variant wins (the best of those that won), AWins when the
  main predictor beats every variant, Inconclusive when any comparison is, NoDifference
  when all ended without a winner; else Running. Once reached, it stays until a restart;
- with onDecision promote, the winner takes all unmatched traffic and the losing
  variants' weights drop to 0 (:func:`promoted_weights`, applied to the routes only:
  the spec is never changed);
- unavailable counters keep the last look's numbers and say why in the message.

Limits: during a canary of the main predictor, arm A's traffic is shared by the stable
and the canary revision (the key follows the stable revision, so a promotion restarts the
experiment).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from kubeserve.experiment.sequential import Comparison, Design, Running, Verdict, compare
from kubeserve.experiment.totals import Totals
from kubeserve.plan import DEFAULT_COMPONENT
from kubeserve.rollout.analysis import MetricsUnavailable
from kubeserve.rollout.conditions import Condition
from kubeserve.rollout.observation import Observed, WorkloadKey
from kubeserve.rollout.policy import Policy, parse_duration
from kubeserve.rollout.revision import revision_hash
from kubeserve.rollout.state import ArmRecord, ComparisonRecord, ExperimentRecord, RolloutState
from kubeserve.rollout.transition import Transition

MAIN = DEFAULT_COMPONENT
CONDITION = "ExperimentConcluded"


def experiment_arms(policy: Policy, state: RolloutState) -> tuple[WorkloadKey, ...]:
    """(arm, serving revision): the main predictor's stable one, then weighted variants."""
    assert state.stable is not None
    variants = tuple(
        (v.name, state.variants[v.name].revision)
        for v in policy.variants
        if v.weight > 0 and v.name in state.variants
    )
    return ((MAIN, state.stable.revision), *variants)


def experiment_transition(
    policy: Policy, state: RolloutState, observed: Observed, now: datetime
) -> Transition:
    """Start, look at, decide and (with promote) promote the experiment."""
    t = Transition(state)
    spec = policy.experiment
    if spec is None or state.stable is None:
        return t if state.experiment is None else t.update(experiment=None)
    arms = experiment_arms(policy, state)
    key = revision_hash({"experiment": spec.model_dump(mode="json"), "arms": list(arms)})
    interval = policy.interval_seconds
    record = state.experiment
    if record is None or record.key != key:
        record = ExperimentRecord(
            key=key,
            metric=spec.metric,
            started_at=now,
            arms=[ArmRecord(name=name, revision=revision) for name, revision in arms],
            comparisons=[ComparisonRecord(variant=name) for name, _ in arms[1:]],
            message=f"counting {spec.metric} since {now.isoformat()}",
        )
        versus = ", ".join(name for name, _ in arms[1:])
        t = t.event(
            "Normal", "ExperimentStarted", f"experiment on {spec.metric}: {MAIN} vs {versus}"
        )
        return t.update(experiment=record).requeue(interval)
    if record.looked_at is not None:
        wait = interval - (now - record.looked_at).total_seconds()
        if wait > 0:
            return t.requeue(wait)
    decided_before = record.decision != Verdict.RUNNING
    reading = observed.experiment
    if reading is None or isinstance(reading, MetricsUnavailable):
        reason = "not read" if reading is None else reading.reason
        record = record.model_copy(update={"message": f"arm counters unavailable: {reason}"})
        return t.update(experiment=record).requeue(interval)
    expired = (now - record.started_at).total_seconds() >= parse_duration(spec.max_duration)
    design = Design(
        alpha=spec.alpha / max(1, len(record.comparisons)),
        min_samples=spec.min_samples,
        higher_is_better=spec.higher_is_better,
        binary=spec.binary,
        min_detectable_effect=spec.min_detectable_effect,
    )
    main = reading.get(MAIN, Totals())
    results: dict[str, Comparison] = {}
    comparisons = []
    for before in record.comparisons:
        result = compare(
            design, main, reading.get(before.variant, Totals()), _running(before), expired
        )
        results[before.variant] = result
        comparisons.append(_comparison_record(before, result, now))
    record = _decided(
        record.model_copy(
            update={
                "looked_at": now,
                "arms": _arm_records(record.arms, results),
                "comparisons": comparisons,
            }
        ),
        spec.higher_is_better,
        now,
    )
    if record.decision != Verdict.RUNNING and not decided_before:
        t = t.event("Normal", CONDITION, f"{record.decision}: {record.message}")
    if spec.on_decision == "promote" and record.winner is not None and not record.promoted:
        record = record.model_copy(update={"promoted": True})
        t = t.event("Normal", "ExperimentPromoted", f"{record.winner} serves all unmatched traffic")
    return t.update(experiment=record).requeue(interval)


def _running(record: ComparisonRecord) -> Running:
    """What the last look carried over (None bounds are unbounded)."""
    return Running(
        p_value=record.p_value,
        lower=-math.inf if record.lower is None else record.lower,
        upper=math.inf if record.upper is None else record.upper,
        verdict=Verdict(record.decision),
    )


def _finite(value: float) -> float | None:
    """JSON has no infinity: an unbounded end is left out."""
    return value if math.isfinite(value) else None


def _comparison_record(
    before: ComparisonRecord, result: Comparison, now: datetime
) -> ComparisonRecord:
    running = result.running
    return ComparisonRecord(
        variant=before.variant,
        difference=result.difference,
        lower=_finite(running.lower),
        upper=_finite(running.upper),
        p_value=running.p_value,
        decision=running.verdict.value,
        decided_at=now if result.concluded_now else before.decided_at,
        samples_needed=result.samples_needed,
    )


def _arm_records(arms: list[ArmRecord], results: Mapping[str, Comparison]) -> list[ArmRecord]:
    """Each arm's estimate (arm A's from the first comparison: all see the same A)."""
    records = []
    for arm in arms:
        if arm.name == MAIN:
            estimate = next(iter(results.values())).a if results else None
        else:
            estimate = results[arm.name].b if arm.name in results else None
        if estimate is None:
            records.append(arm)
            continue
        records.append(
            arm.model_copy(
                update={
                    "samples": int(estimate.samples),
                    "estimate": estimate.estimate,
                    "lower": _finite(estimate.lower),
                    "upper": _finite(estimate.upper),
                }
            )
        )
    return records


def _overall(comparisons: list[ComparisonRecord]) -> Verdict:
    """The experiment's decision from its comparisons (rules in the module docstring)."""
    decisions = [Verdict(c.decision) for c in comparisons]
    if Verdict.B_WINS in decisions:
        return Verdict.B_WINS
    if Verdict.RUNNING in decisions or not decisions:
        return Verdict.RUNNING
    if all(d == Verdict.A_WINS for d in decisions):
        return Verdict.A_WINS
    if Verdict.INCONCLUSIVE in decisions:
        return Verdict.INCONCLUSIVE
    return Verdict.NO_DIFFERENCE


def _decided(record: ExperimentRecord, higher_is_better: bool, now: datetime) -> ExperimentRecord:
    """The record with its overall decision, winner and message (a decision stays)."""
    update: dict[str, object] = {"message": experiment_message(record)}
    if record.decision == Verdict.RUNNING:
        verdict = _overall(record.comparisons)
        if verdict != Verdict.RUNNING:
            update |= {"decision": verdict.value, "decided_at": now}
        if verdict == Verdict.A_WINS:
            update["winner"] = MAIN
        if verdict == Verdict.B_WINS:
            estimates = {a.name: a.estimate for a in record.arms}
            won = [c.variant for c in record.comparisons if c.decision == Verdict.B_WINS]
            best = max if higher_is_better else min
            update["winner"] = best(won, key=lambda name: estimates.get(name, 0.0))
    return record.model_copy(update=update)


def _number(value: float, binary: bool, signed: bool = False) -> str:
    """A rate with 3 decimals, a mean with 4 significant digits."""
    sign = "+" if signed else ""
    return f"{value:{sign}.3f}" if binary else f"{value:{sign}.4g}"


def experiment_message(record: ExperimentRecord) -> str:
    """One line per variant: "b: accuracy 0.912 vs 0.874, +0.038 [0.011, 0.065], p=0.004
    always-valid" (the interval's unbounded ends print as ±inf)."""
    binary = record.metric not in ("latencyMean", "reward")
    arms = {a.name: a for a in record.arms}
    main = arms.get(MAIN)
    lines = []
    for c in record.comparisons:
        arm = arms.get(c.variant)
        if main is None or arm is None:
            continue
        lower = "-inf" if c.lower is None else _number(c.lower, binary)
        upper = "+inf" if c.upper is None else _number(c.upper, binary)
        p = "p<0.001" if c.p_value < 0.001 else f"p={c.p_value:.3f}"
        line = (
            f"{c.variant}: {record.metric} {_number(arm.estimate, binary)} vs "
            f"{_number(main.estimate, binary)}, {_number(c.difference, binary, signed=True)} "
            f"[{lower}, {upper}], {p} always-valid"
        )
        if c.decision == Verdict.RUNNING and c.samples_needed is not None:
            line += f", about {c.samples_needed} more samples needed"
        lines.append(f"{line} ({c.decision}, {arm.samples}/{main.samples} samples)")
    return "; ".join(lines)


def experiment_condition(state: RolloutState) -> Condition | None:
    """ExperimentConcluded: True with the decision as reason once decided, else False."""
    record = state.experiment
    if record is None:
        return None
    concluded = record.decision != Verdict.RUNNING
    return Condition(
        CONDITION, "True" if concluded else "False", record.decision, record.message or "waiting"
    )


def promoted_weights(policy: Policy, state: RolloutState) -> Mapping[str, int] | None:
    """The variants' weights after a promotion: the winner 100, the others 0."""
    record = state.experiment
    if record is None or not record.promoted or record.winner is None:
        return None
    return {v.name: 100 if v.name == record.winner else 0 for v in policy.variants}
