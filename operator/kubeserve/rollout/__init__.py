"""Rollout logic: revisions, canary/A-B decisions and canary analysis, all without a cluster.

The modules, top-down: each imports only modules listed below it
(tests/unit/test_package_order.py checks).

- :mod:`.metrics` and :mod:`.prometheus` read the canary's metrics for the controller
  (pod scrapes or PromQL), as :func:`.observation.metrics_request` asks;
- :mod:`.promql` refuses custom queries not confined to the InferenceService's namespace;
- :mod:`.responses` reads HTTP answers with a byte cap and one deadline;
- :mod:`.decision` is the pure decision function (spec + state + facts -> state, plan,
  conditions, events); it only composes the stages below, in order:
- :mod:`.canary` decides the main predictor's stable/canary/previous revisions;
- :mod:`.variants` decides each A/B variant's serving revision;
- :mod:`.experiment` looks at the A/B experiment's arms once per interval and decides;
- :mod:`.traffic` decides the workloads and routes (the plan for the builders);
- :mod:`.conditions` decides the rollout's status conditions;
- :mod:`.transition` is what a stage returns (state, events, requeues, progress);
- :mod:`.drain` keeps workloads that lost their traffic at size for a while;
- :mod:`.settings` holds the operator-wide rollout settings;
- :mod:`.observation` is what the operator observed, and which metrics to fetch;
- :mod:`.state` is the rollout state kept in `status.rollout`;
- :mod:`.analysis` judges canary metrics;
- :mod:`.policy` reads the rollout-relevant parts of a spec;
- :mod:`.revision` names a predictor spec by its hash.
"""

from kubeserve.rollout.revision import revision_hash

__all__ = ["revision_hash"]
