"""Rollout logic: revisions, canary/A-B decisions and canary analysis, all without a cluster.

- :mod:`.revision` names a predictor spec by its hash;
- :mod:`.policy` reads the rollout-relevant parts of a spec;
- :mod:`.state` is the rollout state kept in `status.revisions`;
- :mod:`.decision` is the pure decision function (state + facts -> plan, conditions);
- :mod:`.analysis` judges canary metrics; :mod:`.metrics` and :mod:`.prometheus` read them.
"""

from kubeserve.rollout.revision import revision_hash

__all__ = ["revision_hash"]
