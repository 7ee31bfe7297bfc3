"""A/B variants: which revision of each variant serves, and when a new one takes over.

Limits: no canary, steps or analysis per variant: a variant's new revision replaces the
serving one as soon as it is Ready at the serving one's current size (clamped to its own
bounds), like a promotion of the main predictor; the old one drains. A removed variant
drains and goes. Only the first variant still waiting (by name) reports progress: the
condition has one message.
"""

from __future__ import annotations

from datetime import datetime

from kubeserve.rollout.drain import retire
from kubeserve.rollout.observation import Observed
from kubeserve.rollout.policy import Policy, Replicas
from kubeserve.rollout.revision import revision_hash
from kubeserve.rollout.settings import RolloutSettings
from kubeserve.rollout.state import PendingRevision, RolloutState, VariantState
from kubeserve.rollout.transition import Transition


def variant_transitions(
    policy: Policy,
    state: RolloutState,
    observed: Observed,
    now: datetime,
    settings: RolloutSettings,
) -> Transition:
    """Decide every variant's serving and pending revision, drains, events and progress."""
    until = settings.drain_until(now)
    t = Transition(state)
    variants = dict(state.variants)
    for variant in policy.variants:
        name = variant.name
        desired = revision_hash(variant.predictor)
        current = variants.get(name)
        if current is None:
            variants[name] = VariantState(
                revision=desired, since=now, predictor=dict(variant.predictor)
            )
            t = t.event("Normal", "VariantCreated", f"variant {name} serves revision {desired}")
            continue
        if desired == current.revision:
            variants[name] = current.model_copy(update={"pending": None})
            continue
        pending = current.pending
        if pending is None or pending.revision != desired:
            serving = observed.ready_replicas((name, current.revision))
            pending = PendingRevision(
                revision=desired,
                predictor=dict(variant.predictor),
                replicas=Replicas.of(variant.predictor).promotion_size(serving),
            )
            current = current.model_copy(update={"pending": pending})
            t = t.event(
                "Normal",
                "VariantUpdating",
                f"variant {name}: revision {desired} deploys to replace {current.revision}",
            )
        if observed.ready((name, pending.revision), pending.replicas):
            size = Replicas.of(current.predictor)
            t = t.update(
                retiring=retire(
                    t.state.retiring, name, current.revision, size, current.predictor, until
                )
            )
            t = t.event(
                "Normal",
                "VariantUpdated",
                f"variant {name} serves revision {pending.revision} (was {current.revision})",
            )
            current = current.model_copy(
                update={
                    "revision": pending.revision,
                    "predictor": pending.predictor,
                    "since": now,
                    "pending": None,
                }
            )
        elif t.progress is None:
            have = observed.ready_replicas((name, pending.revision))
            t = t.progressing(
                "VariantUpdating",
                f"variant {name} revision {pending.revision} needs "
                f"{pending.replicas} ready replicas ({have} ready)",
            )
        variants[name] = current
    wanted = {v.name for v in policy.variants}
    for name in sorted(set(variants) - wanted):
        gone = variants.pop(name)
        size = Replicas.of(gone.predictor)
        t = t.update(
            retiring=retire(t.state.retiring, name, gone.revision, size, gone.predictor, until)
        )
        t = t.event("Normal", "VariantRemoved", f"variant {name} removed from the spec")
    return t.update(variants=variants)
