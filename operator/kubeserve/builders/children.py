"""The builders' entry point: (InferenceService, TrafficPlan, config) -> children.

Pure and deterministic: same inputs, same list (sorted by kind, then name), no API
calls. The plan may name revisions that are no longer in the spec (the stable revision
during a canary, the previous one kept for rollback), so the caller passes the raw
predictor spec of every workload (the rollout decision keeps them in status).
The InferenceService comes validated (the caller parsed it once); the predictor specs
of the plan are validated with the API models before use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeserve.api.v1alpha1 import InferenceService, Predictor
from kubeserve.builders.network_policy import network_policy
from kubeserve.builders.route import route_children
from kubeserve.builders.tls import backend_tls_policy, certificate
from kubeserve.builders.workload import workload_children
from kubeserve.config import OperatorConfig
from kubeserve.plan import TrafficPlan

KIND_ORDER = (
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Certificate",
    "NetworkPolicy",
    "HTTPRoute",
    "BackendTLSPolicy",
    "Ingress",
)


WorkloadKey = tuple[str, str]
"""(component, revision) of one workload."""


class MissingRevisionError(LookupError):
    """The plan names a workload whose predictor spec was not given."""


def sort_key(obj: Mapping[str, Any]) -> tuple[int, str]:
    """Children order: by kind (workloads first, routes last), then name."""
    return KIND_ORDER.index(obj["kind"]), obj["metadata"]["name"]


def build_children(
    isvc: InferenceService,
    plan: TrafficPlan,
    predictors: Mapping[WorkloadKey, Mapping[str, Any]],
    config: OperatorConfig,
    *,
    routes: bool = True,
) -> list[dict[str, Any]]:
    """Every child object of one InferenceService for one traffic plan, sorted.

    `predictors` maps each workload's (component, revision) to its raw predictor spec;
    `routes=False` leaves out the route objects (after a RouteUnsupported, so the
    workloads are still applied while the status explains the route problem).
    """
    children: list[dict[str, Any]] = []
    for workload in plan.workloads:
        raw = predictors.get((workload.component, workload.revision))
        if raw is None:
            raise MissingRevisionError(
                f"no predictor spec for revision {workload.revision} of {workload.component}"
            )
        predictor = Predictor.model_validate(raw)
        children += workload_children(isvc, workload, predictor, config)
    for extra in (certificate(isvc, config), network_policy(isvc, config)):
        if extra is not None:
            children.append(extra)
    if routes:
        children += route_children(isvc, plan, config)
        policy = backend_tls_policy(isvc, plan, config)
        if policy is not None:
            children.append(policy)
    return sorted(children, key=sort_key)
