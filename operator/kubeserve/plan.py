"""The desired traffic plan: the contract between rollout logic and the builders.

The rollout module decides *what* should run and receive traffic (which revisions of
which predictors, with which weights, header matches and mirror); the builders turn a
plan into Kubernetes objects. Neither side talks to the API server, so both are pure
and unit-testable. Names of the per-revision children are derived here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_COMPONENT = "predictor"
"""Component name of the main predictor; A/B variants use their variant name."""


def workload_name(isvc: str, component: str, revision: str) -> str:
    """Name of the Deployment/Service/HPA/PDB serving one revision of one component."""
    return f"{isvc}-{component}-{revision}"


@dataclass(frozen=True)
class Workload:
    """One revision of one predictor that should exist, with its replica bounds."""

    component: str
    """`predictor` for the main predictor, else the A/B variant name."""
    revision: str
    """Short hash of the predictor spec (see rollout.revision_hash)."""
    min_replicas: int
    max_replicas: int
    """Bounds for the Deployment/HPA; 0/0 means scaled to zero (kept for fast rollback)."""


@dataclass(frozen=True)
class Backend:
    """A weighted route target: one workload's Service."""

    component: str
    revision: str
    weight: int
    """0..100; the weights of one rule add up to 100."""


@dataclass(frozen=True)
class HeaderRoute:
    """Requests whose headers all match go to one backend (A/B by header, sticky)."""

    headers: tuple[tuple[str, str], ...]
    backend: Backend


@dataclass(frozen=True)
class Mirror:
    """Copy `percent` of the default rule's requests to `backend`; responses discarded."""

    backend: Backend
    percent: int


@dataclass(frozen=True)
class TrafficPlan:
    """Everything the builders need to know about workloads and routing."""

    workloads: tuple[Workload, ...]
    backends: tuple[Backend, ...]
    """The default rule's weighted backends."""
    header_routes: tuple[HeaderRoute, ...] = field(default=())
    mirror: Mirror | None = None
