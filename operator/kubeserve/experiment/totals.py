"""One arm's sufficient statistics: count, sum and sum of squares of its observations.

Limits: the variance is the plain plug-in estimate; for a proportion (0/1 observations)
it is computed from a Laplace-smoothed rate, (sum + 1) / (count + 2), so an arm that has
seen only zeros (no error yet) still has a positive variance and a test on it is not
infinitely confident. For a mean the variance is floored at a tiny positive value
relative to the mean's scale, for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass

VARIANCE_FLOOR = 1e-12
"""Smallest variance of a mean's observations, relative to (1 + mean²)."""


@dataclass(frozen=True)
class Totals:
    """Sufficient statistics of one arm: what counters of count, sum and sum² give."""

    count: float = 0.0
    total: float = 0.0
    """Sum of the observations (errors, correct answers, reward, latency seconds)."""
    squares: float = 0.0
    """Sum of the squared observations; equal to `total` for 0/1 observations."""

    @classmethod
    def proportion(cls, successes: float, trials: float) -> Totals:
        """Totals of `trials` 0/1 observations of which `successes` were 1."""
        return cls(count=trials, total=successes, squares=successes)

    def since(self, baseline: Totals) -> Totals:
        """The observations made after `baseline` was taken (counters only grow)."""
        return Totals(
            count=self.count - baseline.count,
            total=self.total - baseline.total,
            squares=self.squares - baseline.squares,
        )

    @property
    def mean(self) -> float:
        """Sample mean (0 before the first observation)."""
        return self.total / self.count if self.count > 0 else 0.0

    def variance(self, binary: bool) -> float:
        """Per-observation variance estimate (smoothed for a proportion, floored for a mean)."""
        if binary:
            rate = (self.total + 1.0) / (self.count + 2.0)
            return rate * (1.0 - rate)
        mean = self.mean
        if self.count > 1:
            raw = (self.squares - self.count * mean * mean) / (self.count - 1.0)
        else:
            raw = 0.0
        return max(raw, VARIANCE_FLOOR * (1.0 + mean * mean))
