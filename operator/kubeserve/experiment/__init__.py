"""A/B experiments: an always-valid sequential test of two arms, without a cluster.

Limits: the statistics are asymptotic (a plug-in variance in a Gaussian mixture
likelihood ratio, see the boundary module), so they hold for large samples of independent
requests; the decision needs at least `minSamples` per arm before it concludes. Every
function here is pure and works on sufficient statistics (count, sum, sum of squares),
the values Prometheus counters give, so no raw sample is ever stored.

The modules, top-down: each imports only modules listed below it
(tests/unit/test_package_order.py checks).

- :mod:`.source` names the series each metric's counters come from, as PromQL per arm;
- :mod:`.sequential` compares two arms at one look and decides (Running, BWins, AWins,
  NoDifference, Inconclusive), carrying the running p-value and interval between looks;
- :mod:`.size` estimates the samples still needed to detect a minimum effect;
- :mod:`.boundary` is the normal-mixture likelihood ratio and its confidence radius;
- :mod:`.totals` holds one arm's sufficient statistics and its mean and variance.
"""
