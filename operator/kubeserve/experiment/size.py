"""How many more samples an experiment needs to detect a given effect.

Limits: an estimate, not a promise. It assumes the arms keep their current variances
and their current split of the traffic, and it answers the total sample count (both arms
together) at which the confidence sequence's half-width shrinks to the minimum
detectable effect: a true effect of exactly that size is then detected about half the
time, a larger one more often. Sizes above :data:`MAX_SAMPLES` are reported as that cap.
"""

from __future__ import annotations

import math

from kubeserve.experiment.boundary import z_radius

MAX_SAMPLES = 10**12
"""The largest total sample count the estimate searches."""


def half_width(
    total: float, share_b: float, variances: tuple[float, float], rho: float, alpha: float
) -> float:
    """The difference's confidence half-width with `total` samples split `share_b` to B."""
    n_a, n_b = total * (1.0 - share_b), total * share_b
    if n_a <= 0 or n_b <= 0:
        return math.inf
    variance = variances[0] / n_a + variances[1] / n_b
    return math.sqrt(variance) * z_radius(n_a * n_b / total, rho, alpha)


def samples_needed(
    effect: float,
    share_b: float,
    variances: tuple[float, float],
    rho: float,
    alpha: float,
    samples: float,
) -> int:
    """Samples (both arms) still needed beyond `samples` for a half-width <= `effect`."""
    if effect <= 0 or not 0.0 < share_b < 1.0:
        return MAX_SAMPLES

    def enough(total: float) -> bool:
        return half_width(total, share_b, variances, rho, alpha) <= effect

    high = 2.0
    while not enough(high):
        if high >= MAX_SAMPLES:
            return MAX_SAMPLES
        high *= 2.0
    low = high / 2.0
    while high - low > 1.0:
        middle = (low + high) / 2.0
        if enough(middle):
            high = middle
        else:
            low = middle
    return max(0, math.ceil(high - samples))
