"""Per-revision children: Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget.

Replica count: the Deployment is built with the plan's minimum (0 keeps a scaled-down
revision around for a fast rollback). When a workload autoscales (max > min) an
autoscaling/v2 HPA moves ``spec.replicas`` and the reconcile pass replaces the built
value with the live one clamped to [min, max] (see
:func:`kubeserve.controller.reconcile.keep_autoscaled_replicas`), so server-side apply
never fights the HPA, and never drops the field (which would reset it to 1). A PDB (minAvailable 1)
protects workloads that run more than one replica.
"""

from __future__ import annotations

from typing import Any

from kubeserve.api.v1alpha1 import InferenceService, Predictor
from kubeserve.builders.meta import (
    labels,
    object_meta,
    selector_labels,
)
from kubeserve.builders.pod import FeedbackContext, pod_template
from kubeserve.config import OperatorConfig
from kubeserve.plan import Workload, workload_name
from kubeserve_runtime.contract import GRPC_PORT, HTTP_PORT

PODS_METRICS = {
    "concurrency": "kubeserve_inflight_requests",
    "rps": "kubeserve_requests_per_second",
}
"""Pods metrics (served by a Prometheus adapter) behind the concurrency/rps scale metrics."""


def autoscaled(workload: Workload) -> bool:
    """Whether an HPA owns the workload's replica count."""
    return workload.max_replicas > workload.min_replicas


def deployment(
    isvc: InferenceService,
    workload: Workload,
    predictor: Predictor,
    config: OperatorConfig,
) -> dict[str, Any]:
    """The Deployment of one revision."""
    name = workload_name(isvc.metadata.name, workload.component, workload.revision)
    own_labels = labels(isvc.metadata.name, workload.component, workload.revision)
    auth = isvc.spec.auth
    feedback = (
        None
        if isvc.spec.feedback is None
        else FeedbackContext(isvc.spec.feedback, workload.component)
    )
    selector = selector_labels(isvc.metadata.name, workload.component, workload.revision)
    spec: dict[str, Any] = {"replicas": workload.min_replicas}
    spec.update(
        {
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": pod_template(
                isvc.metadata.name,
                workload.revision,
                predictor,
                auth,
                dict(own_labels),
                dict(selector),
                config,
                feedback,
                namespace=isvc.metadata.namespace,
                component=workload.component,
                tls=isvc.spec.tls,
            ),
        }
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(isvc, name, own_labels),
        "spec": spec,
    }


def service_ports(tls: bool = False) -> list[dict[str, Any]]:
    """REST and gRPC ports, named, with their application protocols (``https`` for both
    under TLS: gRPC then negotiates HTTP/2 by ALPN)."""
    return [
        {
            "name": "http",
            "port": HTTP_PORT,
            "targetPort": HTTP_PORT,
            "protocol": "TCP",
            "appProtocol": "https" if tls else "http",
        },
        {
            "name": "grpc",
            "port": GRPC_PORT,
            "targetPort": GRPC_PORT,
            "protocol": "TCP",
            "appProtocol": "https" if tls else "kubernetes.io/h2c",
        },
    ]


def service(isvc: InferenceService, workload: Workload) -> dict[str, Any]:
    """The ClusterIP Service of one revision (the routes' backend)."""
    name = workload_name(isvc.metadata.name, workload.component, workload.revision)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(
            isvc, name, labels(isvc.metadata.name, workload.component, workload.revision)
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(isvc.metadata.name, workload.component, workload.revision),
            "ports": service_ports(tls=isvc.spec.tls is not None),
        },
    }


def _metric(predictor: Predictor) -> dict[str, Any]:
    """The HPA metric for the predictor's scaleMetric and scaleTarget."""
    target = predictor.effective_scale_target
    if predictor.scale_metric in ("cpu", "memory"):
        return {
            "type": "Resource",
            "resource": {
                "name": predictor.scale_metric,
                "target": {"type": "Utilization", "averageUtilization": target},
            },
        }
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": PODS_METRICS[predictor.scale_metric]},
            "target": {"type": "AverageValue", "averageValue": str(target)},
        },
    }


def autoscaler(isvc: InferenceService, workload: Workload, predictor: Predictor) -> dict[str, Any]:
    """The autoscaling/v2 HPA of one revision."""
    name = workload_name(isvc.metadata.name, workload.component, workload.revision)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(
            isvc, name, labels(isvc.metadata.name, workload.component, workload.revision)
        ),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": workload.min_replicas,
            "maxReplicas": workload.max_replicas,
            "metrics": [_metric(predictor)],
        },
    }


def disruption_budget(isvc: InferenceService, workload: Workload) -> dict[str, Any]:
    """The PodDisruptionBudget of one revision (at least one pod stays up)."""
    name = workload_name(isvc.metadata.name, workload.component, workload.revision)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(
            isvc, name, labels(isvc.metadata.name, workload.component, workload.revision)
        ),
        "spec": {
            "minAvailable": 1,
            "selector": {
                "matchLabels": selector_labels(
                    isvc.metadata.name, workload.component, workload.revision
                )
            },
        },
    }


def workload_children(
    isvc: InferenceService,
    workload: Workload,
    predictor: Predictor,
    config: OperatorConfig,
) -> list[dict[str, Any]]:
    """Every child of one revision."""
    out = [
        deployment(isvc, workload, predictor, config),
        service(isvc, workload),
    ]
    if autoscaled(workload):
        out.append(autoscaler(isvc, workload, predictor))
    if workload.min_replicas > 1:
        out.append(disruption_budget(isvc, workload))
    return out
