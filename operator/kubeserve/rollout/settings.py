"""Operator-wide rollout settings (the operator's config; the spec can override some).

Limits: two knobs only. The history length is the default for InferenceServices
without `rollout.historyLimit`; the drain period is the same for every workload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from kubeserve.rollout.state import DEFAULT_HISTORY_LIMIT


@dataclass(frozen=True)
class RolloutSettings:
    """Operator-wide rollout settings."""

    history_limit: int = DEFAULT_HISTORY_LIMIT
    drain_seconds: float = 10.0
    """How long a workload keeps its size after its traffic moved away."""

    def drain_until(self, now: datetime) -> datetime:
        """When a workload that loses its traffic at `now` may shrink."""
        return now + timedelta(seconds=self.drain_seconds)
