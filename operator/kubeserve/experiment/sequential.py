"""One look at an A/B experiment: estimates, always-valid intervals, p-value and decision.

:func:`compare` is a pure function of the design, the two arms' sufficient statistics,
what the previous look carried over (:class:`Running`) and whether the time is up.
Arm A is the main predictor, arm B a variant; the difference is B - A.

Rules, in order:

1. a decision once reached stays (the caller keeps it; :func:`compare` takes it in
   `running` and returns it unchanged, while the numbers keep updating);
2. nothing concludes before both arms have `min_samples` observations, and the running
   p-value and interval only start then (the plug-in variance needs data);
3. p <= alpha: the better arm, given the direction, wins (BWins or AWins);
4. with a minimum detectable effect, an interval inside (-effect, +effect) concludes
   NoDifference early (the confidence sequence holds at every look, so it may stop);
5. at max duration: NoDifference when both arms reached `min_samples` and no effect of
   the minimum detectable size (when set) is left in the interval, else Inconclusive.

Limits: two arms per call; with several variants, each is compared with the main
predictor at alpha divided by the number of variants (Bonferroni), which the caller
does. The per-arm intervals are confidence sequences of their own at the same alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from kubeserve.experiment.boundary import mixing_precision, p_value, z_radius
from kubeserve.experiment.size import samples_needed
from kubeserve.experiment.totals import Totals


class Verdict(StrEnum):
    """What an experiment concluded (or that it still runs)."""

    RUNNING = "Running"
    B_WINS = "BWins"
    A_WINS = "AWins"
    NO_DIFFERENCE = "NoDifference"
    INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True)
class Design:
    """What the experiment tests, fixed before any data."""

    alpha: float = 0.05
    min_samples: int = 100
    """Observations each arm needs before anything concludes (also tunes the mixture)."""
    higher_is_better: bool = True
    binary: bool = False
    """0/1 observations (a proportion: error rate, accuracy, conversion) or a mean."""
    min_detectable_effect: float | None = None
    """Absolute difference of interest (for the sample-size estimate and NoDifference)."""

    @property
    def arm_rho(self) -> float:
        """Mixture precision of one arm's interval, tuned at `min_samples` observations."""
        return mixing_precision(self.alpha, self.min_samples)

    @property
    def difference_rho(self) -> float:
        """Mixture precision of the difference, tuned at `min_samples` per arm."""
        return mixing_precision(self.alpha, effective_samples(self.min_samples, self.min_samples))


@dataclass(frozen=True)
class Running:
    """What one look carries to the next: the running p-value, interval and decision."""

    p_value: float = 1.0
    lower: float = -math.inf
    upper: float = math.inf
    verdict: Verdict = Verdict.RUNNING


@dataclass(frozen=True)
class ArmEstimate:
    """One arm's sample count, mean and always-valid interval."""

    samples: float
    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class Comparison:
    """The answer of one look."""

    a: ArmEstimate
    b: ArmEstimate
    difference: float
    """B - A."""
    running: Running
    """The running p-value, interval of the difference and decision (store it)."""
    samples_needed: int | None
    """More samples (both arms) to detect the minimum effect; None when it is not set or
    an arm has no sample yet (no split or variance to estimate from)."""
    concluded_now: bool
    """This look reached the decision (it was Running before)."""


def effective_samples(n_a: float, n_b: float) -> float:
    """Intrinsic time of a difference of two means: n_a n_b / (n_a + n_b)."""
    return n_a * n_b / (n_a + n_b) if n_a > 0 and n_b > 0 else 0.0


def arm_estimate(design: Design, arm: Totals) -> ArmEstimate:
    """One arm's mean and its confidence sequence (clipped to [0, 1] for a proportion)."""
    mean = arm.mean
    radius = math.sqrt(arm.variance(design.binary) / arm.count) if arm.count > 0 else math.inf
    radius *= z_radius(arm.count, design.arm_rho, design.alpha)
    lower, upper = mean - radius, mean + radius
    if design.binary:
        lower, upper = max(0.0, lower), min(1.0, upper)
    return ArmEstimate(samples=arm.count, estimate=mean, lower=lower, upper=upper)


def _verdict(
    design: Design, running: Running, difference: float, ready: bool, expired: bool
) -> Verdict:
    """The decision of this look (rules 3-5 of the module docstring)."""
    if not ready:
        return Verdict.INCONCLUSIVE if expired else Verdict.RUNNING
    if running.p_value <= design.alpha:
        b_better = (difference > 0) == design.higher_is_better
        return Verdict.B_WINS if b_better else Verdict.A_WINS
    effect = design.min_detectable_effect
    if effect is not None and -effect < running.lower and running.upper < effect:
        return Verdict.NO_DIFFERENCE
    if expired:
        return Verdict.INCONCLUSIVE if effect is not None else Verdict.NO_DIFFERENCE
    return Verdict.RUNNING


def compare(
    design: Design,
    a: Totals,
    b: Totals,
    running: Running | None = None,
    expired: bool = False,
) -> Comparison:
    """Compare arm B with arm A at one look (see the module docstring for the rules)."""
    before = running or Running()
    difference = b.mean - a.mean
    ready = min(a.count, b.count) >= design.min_samples
    after = before
    variances = (a.variance(design.binary), b.variance(design.binary))
    rho = design.difference_rho
    if ready:
        spread = math.sqrt(variances[0] / a.count + variances[1] / b.count)
        samples = effective_samples(a.count, b.count)
        radius = spread * z_radius(samples, rho, design.alpha)
        after = replace(
            before,
            p_value=min(before.p_value, p_value(difference / spread, samples, rho)),
            lower=max(before.lower, difference - radius),
            upper=min(before.upper, difference + radius),
        )
    concluded_now = False
    if before.verdict == Verdict.RUNNING:
        verdict = _verdict(design, after, difference, ready, expired)
        after = replace(after, verdict=verdict)
        concluded_now = verdict != Verdict.RUNNING
    needed = None
    effect = design.min_detectable_effect
    if effect is not None and a.count > 0 and b.count > 0:
        total = a.count + b.count
        needed = samples_needed(effect, b.count / total, variances, rho, design.alpha, total)
    return Comparison(
        a=arm_estimate(design, a),
        b=arm_estimate(design, b),
        difference=difference,
        running=after,
        samples_needed=needed,
        concluded_now=concluded_now,
    )
