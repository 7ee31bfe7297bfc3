"""Rollout state, kept in the InferenceService status so a restarted operator resumes.

Everything the decision function needs to remember between reconciles lives here and
is written to `status.rollout` (camelCase JSON), never in operator memory (the
readable `status.revisions` summary is derived from it by the status writer):

- `stable`: the revision serving the main predictor's traffic (at full capacity);
- `canary`: the newest revision while it is tried (its traffic percent, step, analysis
  window, failed checks, and the terminal `RolledBack` phase that stops retries until the
  spec changes again);
- `previous`: the stable revision before the last promotion, kept at zero replicas when a
  rollout block is set so a GitOps revert reuses its Deployment;
- `history`: a bounded audit trail of revisions and their outcomes;
- `retiring`: workloads that just lost their traffic and keep their size for a short
  drain before they are scaled to zero or pruned;
- `variants`: the serving (and pending) revision of each A/B variant;
- `experiment`: the A/B experiment's arms, comparisons (with the running always-valid
  p-value and interval each look carries to the next) and decision; the status writer
  publishes it as `status.experiment`.

Each revision record also keeps its predictor spec: during a canary the spec holds only
the new predictor, yet the builders must still render the stable one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kubeserve.rollout.analysis import PodCounters

STATUS_KEY = "rollout"
"""The status field holding the rollout state (`status.revisions` is the readable summary)."""

DEFAULT_HISTORY_LIMIT = 10

Outcome = Literal["Promoted", "RolledBack", "Superseded"]
"""How a revision's time as the rollout target ended (history)."""

CanaryPhase = Literal["Progressing", "Promoting", "RolledBack"]
"""Progressing: canary receives its share; Promoting: scaling to full size before it takes
all traffic; RolledBack: analysis failed, kept at zero until the spec changes."""


class StatusModel(BaseModel):
    """Base of the state records: camelCase on the wire, accepts either spelling."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
    )


class RevisionStatus(StatusModel):
    """One revision of the main predictor in a role (stable or previous)."""

    revision: str
    percent: int = 0
    """Percent of the main predictor's traffic (the variants' shares excluded)."""
    since: datetime
    """When the revision took this role."""
    predictor: dict[str, Any] = Field(default_factory=dict)
    """The predictor spec of this revision (the builders render its Deployment from it)."""


class QualityStatus(StatusModel):
    """Ground-truth feedback of the last quality check (its window), canary and stable."""

    scored: float
    accuracy: float | None = None
    stable_scored: float = 0.0
    stable_accuracy: float | None = None


class CanaryStatus(RevisionStatus):
    """The revision being rolled out and the progress of its rollout."""

    phase: CanaryPhase = "Progressing"
    step: int | None = None
    """Index into `rollout.steps` (progressive rollouts only)."""
    step_started_at: datetime | None = None
    window_started_at: datetime | None = None
    """Start of the current analysis window (reset after each verdict)."""
    baseline: dict[str, PodCounters] | None = None
    """Canary pods' counters at the window start (when metrics come from the pods)."""
    failed_checks: int = 0
    """Failed analysis checks of this canary so far (a pass does not reset them)."""
    min_replicas: int = 0
    max_replicas: int = 0
    """Replica bounds requested for the canary in the last plan."""
    promotion_replicas: int | None = None
    """Ready replicas needed before it takes all traffic (the stable's size at promotion)."""
    message: str = ""
    """The last analysis result, or why it was rolled back."""
    quality: QualityStatus | None = None
    """What the last quality check read (minAccuracy / maxQualityDrop only)."""


class HistoryEntry(StatusModel):
    """One line of the audit trail."""

    revision: str
    time: datetime
    outcome: Outcome
    message: str = ""


class RetiringWorkload(StatusModel):
    """A workload that lost its traffic and drains until `until` before it shrinks away."""

    component: str
    revision: str
    min_replicas: int
    max_replicas: int
    until: datetime
    predictor: dict[str, Any] = Field(default_factory=dict)


class PendingRevision(StatusModel):
    """A variant's new revision, deployed but not yet Ready to take over."""

    revision: str
    predictor: dict[str, Any] = Field(default_factory=dict)
    replicas: int
    """Ready replicas required before it replaces the serving revision."""


class VariantState(StatusModel):
    """The serving revision of one A/B variant and the one replacing it, if any."""

    revision: str
    since: datetime
    predictor: dict[str, Any] = Field(default_factory=dict)
    pending: PendingRevision | None = None


class ArmRecord(StatusModel):
    """One experiment arm at the last look (`status.experiment.arms[]`)."""

    name: str
    revision: str | None = None
    samples: int = 0
    estimate: float = 0.0
    lower: float | None = None
    upper: float | None = None


class ComparisonRecord(StatusModel):
    """A variant against the main predictor (`status.experiment.comparisons[]`): the
    interval and p-value are running ones (intersection and minimum over the looks)."""

    variant: str
    difference: float = 0.0
    lower: float | None = None
    upper: float | None = None
    p_value: float = 1.0
    decision: str = "Running"
    decided_at: datetime | None = None
    samples_needed: int | None = None


class ExperimentRecord(StatusModel):
    """The A/B experiment (`status.experiment`, less `key` and `lookedAt`)."""

    key: str
    """Hash of the experiment spec and the arms' revisions: a change restarts it."""
    metric: str
    started_at: datetime
    looked_at: datetime | None = None
    """The last look (looks are one rollout interval apart)."""
    decision: str = "Running"
    decided_at: datetime | None = None
    winner: str | None = None
    promoted: bool | None = None
    message: str = ""
    arms: list[ArmRecord] = Field(default_factory=list)
    comparisons: list[ComparisonRecord] = Field(default_factory=list)

    def to_status(self) -> dict[str, Any]:
        """The public `status.experiment` value."""
        return self.model_dump(
            mode="json", by_alias=True, exclude_none=True, exclude={"key", "looked_at"}
        )


class RolloutState(StatusModel):
    """The whole rollout state of one InferenceService (`status.rollout`)."""

    stable: RevisionStatus | None = None
    canary: CanaryStatus | None = None
    previous: RevisionStatus | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    retiring: list[RetiringWorkload] = Field(default_factory=list)
    variants: dict[str, VariantState] = Field(default_factory=dict)
    experiment: ExperimentRecord | None = None

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> RolloutState:
        """Read the state from an InferenceService status (empty when absent)."""
        raw = (status or {}).get(STATUS_KEY)
        return cls() if raw is None else cls.model_validate(raw)

    def to_status(self) -> dict[str, Any]:
        """Return the JSON value to store at `status.rollout`."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def recorded(self, entry: HistoryEntry, limit: int = DEFAULT_HISTORY_LIMIT) -> RolloutState:
        """A copy with the history entry appended, keeping the newest `limit` entries."""
        history = [*self.history, entry]
        return self.model_copy(update={"history": history[-max(1, limit) :]})

    def promoted(self, revision: str) -> bool:
        """Whether `revision` once became stable (a known-good revision)."""
        return any(h.revision == revision and h.outcome == "Promoted" for h in self.history)
