"""The two-sided normal-mixture boundary: likelihood ratio, p-value and confidence radius.

A standardised statistic z = D / sqrt(V) (an estimate D over its variance V) observed
after an "intrinsic time" of n effective samples is compared with the mixture, over a
standardised effect drawn from N(0, 1/rho), of Gaussian likelihood ratios against "no
effect" (Robbins 1970; Johari, Pekelis, Walsh 2022, "Always valid inference", the mSPRT):

    Lambda = sqrt(rho / (rho + n)) * exp(z² n / (2 (rho + n)))

Lambda is a nonnegative martingale under the null, so by Ville's inequality it exceeds
1/alpha at ANY time with probability at most alpha: p = min(1, 1/Lambda), kept as a
running minimum, is an always-valid p-value, and the set of effects whose own ratio
stays below 1/alpha is a confidence sequence (Howard, Ramdas, McAuliffe, Sekhon 2021,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", the normal mixture
boundary): |D - effect| <= sqrt(V) * sqrt((rho + n)/n * (log((rho + n)/rho) + 2 log(1/alpha))).

Limits: exact for Gaussian observations of known variance; with the plug-in variance and
non-Gaussian (e.g. 0/1) observations it holds asymptotically, as n grows (the
simulations in tests/unit/test_experiment_simulation.py measure it at the sizes used).
`rho` is chosen before any data (from alpha and the size the boundary is tuned for), so
the tuning never peeks.
"""

from __future__ import annotations

import math


def mixing_precision(alpha: float, tuned_at: float) -> float:
    """The mixture's precision rho that makes the boundary tightest near `tuned_at` samples.

    Howard et al. 2021 (Section 3.5, the two-sided normal mixture): rho =
    m / (2 log(1/alpha) + log(1 + 2 log(1/alpha))) minimises the boundary at intrinsic
    time m, and the boundary is within a few percent of that minimum over a wide range.
    """
    log_inv = 2.0 * math.log(1.0 / alpha)
    return max(tuned_at, 1.0) / (log_inv + math.log(1.0 + log_inv))


def log_likelihood_ratio(z: float, samples: float, rho: float) -> float:
    """log Lambda for the standardised statistic `z` after `samples` effective samples."""
    if samples <= 0:
        return 0.0
    return 0.5 * math.log(rho / (rho + samples)) + z * z * samples / (2.0 * (rho + samples))


def p_value(z: float, samples: float, rho: float) -> float:
    """The one-look always-valid p-value min(1, 1/Lambda) (keep the running minimum)."""
    return min(1.0, math.exp(-log_likelihood_ratio(z, samples, rho)))


def z_radius(samples: float, rho: float, alpha: float) -> float:
    """Half-width of the confidence sequence on the z scale (infinite before any sample)."""
    if samples <= 0:
        return math.inf
    return math.sqrt(
        (rho + samples) / samples * (math.log((rho + samples) / rho) + 2.0 * math.log(1 / alpha))
    )
