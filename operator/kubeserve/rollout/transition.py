"""What a rollout stage returns: the next state, and what it wants said and scheduled.

Limits: a Transition carries the whole :class:`RolloutState`, copied at each change
(field by field with `model_copy`, so the records that did not change are shared with
the previous state and must never be changed in place); the states are a few records,
so the copies cost microseconds.

The canary and variant stages are pure functions from a state to a Transition. Every
helper returns a new Transition, so the order of events and progress notes is the order
of the calls in the code, and no stage can see another's work except through the state
it is handed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from kubeserve.rollout.state import RolloutState


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to emit on the InferenceService."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Progress:
    """Why the rollout is not finished: the RolloutProgressing condition's reason and message."""

    reason: str
    message: str

    def noted(self, detail: str) -> Progress:
        """The same progress with a detail appended to its message."""
        return Progress(self.reason, f"{self.message}; {detail}")


@dataclass(frozen=True)
class Transition:
    """A stage's next state, the events it emits, when it wants to run again, and why
    the rollout is still in progress (None: this stage waits for nothing)."""

    state: RolloutState
    events: tuple[Event, ...] = ()
    requeues: tuple[float, ...] = ()
    """Seconds until a decision is due again (the smallest wins)."""
    progress: Progress | None = None

    def update(self, **fields: Any) -> Transition:
        """The transition with these state fields replaced."""
        return replace(self, state=self.state.model_copy(update=fields))

    def event(self, kind: Literal["Normal", "Warning"], reason: str, message: str) -> Transition:
        """The transition with one more event."""
        return replace(self, events=(*self.events, Event(kind, reason, message)))

    def requeue(self, seconds: float) -> Transition:
        """The transition asking to run again after `seconds` (at once when negative)."""
        return replace(self, requeues=(*self.requeues, max(0.0, seconds)))

    def progressing(self, reason: str, message: str) -> Transition:
        """The transition with its progress set (replacing an earlier one)."""
        return replace(self, progress=Progress(reason, message))

    def note(self, detail: str) -> Transition:
        """The transition with a detail appended to its progress message, if it has one."""
        if self.progress is None:
            return self
        return replace(self, progress=self.progress.noted(detail))
