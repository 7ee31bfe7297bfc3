"""The experiment's statistics, proven by simulation (seeded) and by independent computation.

Each simulated experiment is looked at on the operator's schedule: once per rollout
interval (60 s by default) for an hour, the decision function called at every look with
the arms' cumulative counters, exactly as the stage calls it. The measured rates and
their Clopper-Pearson 95% intervals are printed (`pytest -s`) and recorded in
docs/DESIGN.md ("A/B experiments").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import integrate, optimize, stats

from kubeserve.experiment.boundary import (
    log_likelihood_ratio,
    mixing_precision,
    z_radius,
)
from kubeserve.experiment.sequential import Design, Running, Verdict, compare, effective_samples
from kubeserve.experiment.size import half_width
from kubeserve.experiment.totals import Totals
from kubeserve.rollout.policy import DEFAULT_INTERVAL_SECONDS

ALPHA = 0.05
LOOKS = int(3600 / DEFAULT_INTERVAL_SECONDS)
"""One look per rollout interval over a max duration of one hour."""
REQUESTS_PER_LOOK = 80
EXPERIMENTS = 2000


@dataclass(frozen=True)
class Counters:
    """Cumulative per-look counters of many experiments: shape (experiments, looks)."""

    count: NDArray[np.float64]
    total: NDArray[np.float64]
    squares: NDArray[np.float64]


def proportion_arm(rng: np.random.Generator, n: NDArray[np.int64], rate: float) -> Counters:
    """Cumulative counters of 0/1 observations with success `rate`, n per look."""
    hits = rng.binomial(n, rate)
    count, total = np.cumsum(n, axis=1).astype(float), np.cumsum(hits, axis=1).astype(float)
    return Counters(count, total, total)


def latency_arm(
    rng: np.random.Generator, per_look: int, median: float, shape: tuple[int, int]
) -> Counters:
    """Cumulative counters of skewed (log-normal) latencies, `per_look` per look."""
    draws = rng.lognormal(math.log(median), 0.6, size=(*shape, per_look))
    count = np.cumsum(np.full(shape, float(per_look)), axis=1)
    return Counters(
        count, np.cumsum(draws.sum(axis=2), axis=1), np.cumsum((draws**2).sum(axis=2), axis=1)
    )


def split(rng: np.random.Generator, share_b: float) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Each look's requests, routed to B with probability `share_b` (the route's weight)."""
    b = rng.binomial(REQUESTS_PER_LOOK, share_b, size=(EXPERIMENTS, LOOKS))
    return REQUESTS_PER_LOOK - b, b


def run(design: Design, a: Counters, b: Counters, experiments: int) -> list[tuple[Verdict, int]]:
    """Look at each experiment every interval until it concludes: (verdict, look) each."""
    outcomes = []
    for e in range(experiments):
        running = Running()
        look = LOOKS - 1
        for t in range(LOOKS):
            result = compare(
                design,
                Totals(a.count[e, t], a.total[e, t], a.squares[e, t]),
                Totals(b.count[e, t], b.total[e, t], b.squares[e, t]),
                running,
                expired=t == LOOKS - 1,
            )
            running = result.running
            if running.verdict != Verdict.RUNNING:
                look = t
                break
        outcomes.append((running.verdict, look))
    return outcomes


def rate_with_interval(hits: int, trials: int) -> tuple[float, float, float]:
    """The measured rate and its Clopper-Pearson 95% interval."""
    ci = stats.binomtest(hits, trials).proportion_ci(confidence_level=0.95, method="exact")
    return hits / trials, ci.low, ci.high


def report(name: str, hits: int, trials: int) -> tuple[float, float, float]:
    rate, low, high = rate_with_interval(hits, trials)
    print(f"\n{name}: {hits}/{trials} = {rate:.4f}, 95% Clopper-Pearson [{low:.4f}, {high:.4f}]")
    return rate, low, high


def test_a_a_proportions_peeked_every_interval_stay_below_alpha() -> None:
    """2,000 A/A experiments on an error rate of 10%, 50/50 split, 60 looks each."""
    rng = np.random.default_rng(13)
    n_a, n_b = split(rng, 0.5)
    a, b = proportion_arm(rng, n_a, 0.10), proportion_arm(rng, n_b, 0.10)
    design = Design(alpha=ALPHA, min_samples=200, binary=True, higher_is_better=False)
    outcomes = run(design, a, b, EXPERIMENTS)
    wins = sum(v in (Verdict.A_WINS, Verdict.B_WINS) for v, _ in outcomes)
    rate, _, high = report("A/A proportion false positives", wins, EXPERIMENTS)
    assert rate <= ALPHA
    assert high < ALPHA, "the false-positive rate is below alpha with 95% confidence"
    no_difference = sum(v == Verdict.NO_DIFFERENCE for v, _ in outcomes)
    assert no_difference == EXPERIMENTS - wins, "all others end NoDifference at max duration"

    # The same data judged by a fixed-horizon z-test peeked at every look (what the
    # sequential test replaces): its false-positive rate is far above alpha, so the
    # simulation is able to see an invalid test.
    p_a, p_b = a.total / a.count, b.total / b.count
    pooled = (a.total + b.total) / (a.count + b.count)
    se = np.sqrt(pooled * (1 - pooled) * (1 / a.count + 1 / b.count))
    z = np.abs(p_b - p_a) / np.where(se > 0, se, np.inf)
    ready = np.minimum(a.count, b.count) >= design.min_samples
    naive = int(np.any(ready & (z > stats.norm.ppf(1 - ALPHA / 2)), axis=1).sum())
    _, naive_low, _ = report("A/A naive peeked z-test false positives", naive, EXPERIMENTS)
    assert naive_low > ALPHA


def test_a_a_latency_means_with_an_uneven_split_stay_below_alpha() -> None:
    """2,000 A/A experiments on skewed latencies, 64 requests to A and 16 to B per look."""
    rng = np.random.default_rng(1313)
    shape = (EXPERIMENTS, LOOKS)
    a, b = latency_arm(rng, 64, 0.120, shape), latency_arm(rng, 16, 0.120, shape)
    design = Design(alpha=ALPHA, min_samples=100, higher_is_better=False)
    outcomes = run(design, a, b, EXPERIMENTS)
    wins = sum(v in (Verdict.A_WINS, Verdict.B_WINS) for v, _ in outcomes)
    rate, _, high = report("A/A latency-mean false positives (80/20 split)", wins, EXPERIMENTS)
    assert rate <= ALPHA
    assert high < ALPHA


def test_a_known_effect_is_detected_with_the_power_documented() -> None:
    """Accuracy 0.874 (A) vs 0.912 (B), 50/50: B wins, how often and how soon."""
    rng = np.random.default_rng(7)
    experiments = 500
    n_a, n_b = split(rng, 0.5)
    a, b = proportion_arm(rng, n_a, 0.874), proportion_arm(rng, n_b, 0.912)
    design = Design(alpha=ALPHA, min_samples=200, binary=True, min_detectable_effect=0.03)
    outcomes = run(design, a, b, experiments)
    b_wins = [look for v, look in outcomes if v == Verdict.B_WINS]
    power, _, _ = report("power, accuracy +0.038 (B wins)", len(b_wins), experiments)
    median_look = float(np.median(b_wins))
    print(
        f"median look of a B win: {median_look:.0f} of {LOOKS} "
        f"(~{(median_look + 1) * REQUESTS_PER_LOOK / 2:.0f} samples per arm)"
    )
    assert power >= 0.85
    assert not any(v == Verdict.A_WINS for v, _ in outcomes), "never the wrong winner"


def test_estimates_and_intervals_match_an_independent_computation() -> None:
    """At a fixed horizon: means, the difference and its standard error as scipy has them."""
    rng = np.random.default_rng(5)
    x_a, x_b = rng.lognormal(-2.0, 0.5, 700), rng.lognormal(-1.9, 0.5, 300)
    design = Design(alpha=ALPHA, min_samples=100)
    arm_a = Totals(len(x_a), float(x_a.sum()), float((x_a**2).sum()))
    arm_b = Totals(len(x_b), float(x_b.sum()), float((x_b**2).sum()))
    result = compare(design, arm_a, arm_b)
    assert result.a.estimate == pytest.approx(np.mean(x_a), rel=1e-12)
    assert result.difference == pytest.approx(np.mean(x_b) - np.mean(x_a), rel=1e-12)
    welch = stats.ttest_ind(x_b, x_a, equal_var=False)
    standard_error = result.difference / welch.statistic
    rho, n = design.difference_rho, effective_samples(len(x_a), len(x_b))
    width = (result.running.upper - result.running.lower) / 2
    assert width == pytest.approx(standard_error * z_radius(n, rho, ALPHA), rel=1e-9)
    arm_width = (result.b.upper - result.b.lower) / 2
    assert arm_width == pytest.approx(
        stats.sem(x_b) * z_radius(len(x_b), design.arm_rho, ALPHA), rel=1e-9
    )
    # The always-valid interval is wider than the fixed-horizon one it replaces.
    fixed = welch.confidence_interval(0.95)
    assert result.running.lower < fixed.low
    assert fixed.high < result.running.upper
    # A proportion's estimate is the sample rate; its variance the (smoothed) p(1 - p).
    arm = Totals.proportion(91, 1000)
    assert compare(Design(binary=True), arm, arm).a.estimate == stats.binomtest(91, 1000).statistic
    assert arm.variance(binary=True) == pytest.approx(0.091 * 0.909, rel=0.01)


@pytest.mark.parametrize(
    ("z", "samples", "rho"), [(0.0, 50, 10.0), (2.5, 400, 30.0), (-3.1, 4000, 80.0)]
)
def test_the_mixture_ratio_is_the_integral_of_gaussian_ratios(
    z: float, samples: float, rho: float
) -> None:
    """The closed form equals integrating exp(θS - θ²n/2) over θ ~ N(0, 1/rho)."""
    s = z * math.sqrt(samples)
    scale = 1 / math.sqrt(rho)

    def integrand(theta: float) -> float:
        density = float(stats.norm.pdf(theta, 0, scale))
        return math.exp(theta * s - theta**2 * samples / 2) * density

    value, _ = integrate.quad(integrand, -40 * scale, 40 * scale, points=[s / samples], limit=200)
    assert log_likelihood_ratio(z, samples, rho) == pytest.approx(math.log(value), rel=1e-6)


def test_the_mixture_is_tuned_where_it_says() -> None:
    """The chosen rho puts the boundary within 1% of its minimum at the tuning size."""
    m = 250.0
    chosen = z_radius(m, mixing_precision(ALPHA, m), ALPHA)
    best = optimize.minimize_scalar(
        lambda rho: z_radius(m, rho, ALPHA), bounds=(1, 1e4), method="bounded"
    )
    assert chosen <= best.fun * 1.01


def test_the_samples_needed_reach_the_minimum_effect() -> None:
    design = Design(alpha=ALPHA, min_samples=200, binary=True, min_detectable_effect=0.03)
    a, b = Totals.proportion(87, 100), Totals.proportion(91, 100)
    needed = compare(design, a, b).samples_needed
    assert needed is not None
    variances = (a.variance(True), b.variance(True))
    total = 200 + needed
    assert half_width(total, 0.5, variances, design.difference_rho, ALPHA) <= 0.03
    assert half_width(total - 1, 0.5, variances, design.difference_rho, ALPHA) > 0.03
    assert compare(design, a, Totals()).samples_needed is None, "no split to estimate from"
