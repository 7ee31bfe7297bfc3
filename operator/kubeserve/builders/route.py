"""Routing children: the Gateway API HTTPRoute or ingress-nginx Ingresses, and the
in-cluster Service named after the InferenceService.

HTTPRoute (default): header routes first (each an Exact header match, one backend, and a
RequestHeaderModifier filter setting ``kubeserve-routed: header`` so the runtime labels
those requests ``routed="header"`` and an A/B experiment leaves them out), then the
default rule with the plan's weighted backends and an optional RequestMirror
filter. Every field the API server would default is written explicitly (path match
``PathPrefix /``, header match type ``Exact``, backendRef ``group ""``/``kind Service``/
``weight``, parentRef group/kind), so what is applied equals what is stored and GitOps
diffs stay empty.

ingress-nginx: one main Ingress and at most one canary Ingress per host, weighted or
matched by one header. Limit: a canary Ingress inherits every annotation but a few from
the main one and serves its weighted and header-matched traffic alike, so nginx cannot
mark header-matched requests; an experiment then counts them as randomized. A plan nginx
cannot express raises :class:`RouteUnsupported` whose message is meant for the
InferenceService's RoutesReady condition.

The ``<isvc>`` Service selects the main predictor's majority revision: the main
backend with the highest weight in the default rule (the first listed on ties) — the
stable revision, except while a canary takes more than half the traffic.
"""

from __future__ import annotations

from typing import Any

from kubeserve.api.v1alpha1 import MAIN_COMPONENT, InferenceService
from kubeserve.builders.meta import ROUTE_COMPONENT, labels, object_meta, selector_labels
from kubeserve.builders.workload import service_ports
from kubeserve.config import OperatorConfig
from kubeserve.plan import Backend, Mirror, TrafficPlan, workload_name
from kubeserve_runtime.contract import HTTP_PORT, ROUTED_BY_HEADER, ROUTED_HEADER

GATEWAY_GROUP = "gateway.networking.k8s.io"
NGINX = "nginx.ingress.kubernetes.io"


class RouteUnsupported(ValueError):
    """The traffic plan cannot be expressed by the configured route kind."""

    reason = "UnsupportedByIngress"
    """CamelCase reason for the RoutesReady condition."""


def url(isvc: InferenceService, config: OperatorConfig) -> str:
    """Where clients reach the InferenceService (status.url)."""
    if config.ingress_mode == "none":
        meta = isvc.metadata
        scheme = "https" if isvc.spec.tls is not None else "http"
        return f"{scheme}://{meta.name}.{meta.namespace}.svc.cluster.local:{HTTP_PORT}"
    return f"{config.url_scheme}://{config.host(isvc.metadata.name, isvc.metadata.namespace)}"


def _service_name(isvc: InferenceService, backend: Backend) -> str:
    """Name of the Service of a backend."""
    return workload_name(isvc.metadata.name, backend.component, backend.revision)


def _backend_ref(isvc: InferenceService, backend: Backend, weight: int | None) -> dict[str, Any]:
    """A Gateway API backendRef with every defaulted field set."""
    ref: dict[str, Any] = {
        "group": "",
        "kind": "Service",
        "name": _service_name(isvc, backend),
        "port": HTTP_PORT,
    }
    if weight is not None:
        ref["weight"] = weight
    return ref


def _path_prefix() -> dict[str, Any]:
    """The match-everything path, as the API server defaults it."""
    return {"type": "PathPrefix", "value": "/"}


def _routed_filter() -> dict[str, Any]:
    """The filter marking a header-matched rule's requests as not randomized."""
    return {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {"set": [{"name": ROUTED_HEADER, "value": ROUTED_BY_HEADER}]},
    }


def _mirror_filter(
    isvc: InferenceService, plan_mirror: Mirror, config: OperatorConfig
) -> dict[str, Any]:
    """The RequestMirror filter of the default rule."""
    mirror: dict[str, Any] = {"backendRef": _backend_ref(isvc, plan_mirror.backend, None)}
    percent = plan_mirror.percent
    if config.gateway_mirror_mode == "percent":
        mirror["percent"] = percent
    elif config.gateway_mirror_mode == "fraction":
        mirror["fraction"] = {"numerator": percent, "denominator": 100}
    elif percent < 100:
        raise RouteUnsupported(
            f"mirror.percent {percent} needs RequestMirror percent (Gateway API >= v1.3); "
            "the operator is configured for an older Gateway API that mirrors every request"
        )
    return {"type": "RequestMirror", "requestMirror": mirror}


def http_route(isvc: InferenceService, plan: TrafficPlan, config: OperatorConfig) -> dict[str, Any]:
    """The Gateway API HTTPRoute named after the InferenceService."""
    parent: dict[str, Any] = {
        "group": GATEWAY_GROUP,
        "kind": "Gateway",
        "name": config.gateway_name,
    }
    if config.gateway_namespace:
        parent["namespace"] = config.gateway_namespace
    if config.gateway_section_name:
        parent["sectionName"] = config.gateway_section_name
    rules: list[dict[str, Any]] = []
    for route in plan.header_routes:
        rules.append(
            {
                "matches": [
                    {
                        "path": _path_prefix(),
                        "headers": [
                            {"type": "Exact", "name": name, "value": value}
                            for name, value in route.headers
                        ],
                    }
                ],
                "filters": [_routed_filter()],
                "backendRefs": [_backend_ref(isvc, route.backend, 1)],
            }
        )
    default: dict[str, Any] = {
        "matches": [{"path": _path_prefix()}],
        "backendRefs": [_backend_ref(isvc, b, b.weight) for b in plan.backends],
    }
    if plan.mirror is not None:
        default["filters"] = [_mirror_filter(isvc, plan.mirror, config)]
    rules.append(default)
    name = isvc.metadata.name
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": object_meta(isvc, name, labels(name, ROUTE_COMPONENT)),
        "spec": {
            "parentRefs": [parent],
            "hostnames": [config.host(name, isvc.metadata.namespace)],
            "rules": rules,
        },
    }


def _ingress(
    isvc: InferenceService,
    name: str,
    backend: Backend,
    annotations: dict[str, str],
    config: OperatorConfig,
) -> dict[str, Any]:
    """One networking.k8s.io/v1 Ingress for the InferenceService's host."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": object_meta(
            isvc, name, labels(isvc.metadata.name, ROUTE_COMPONENT), annotations or None
        ),
        "spec": {
            "ingressClassName": config.ingress_class,
            "rules": [
                {
                    "host": config.host(isvc.metadata.name, isvc.metadata.namespace),
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": _service_name(isvc, backend),
                                        "port": {"number": HTTP_PORT},
                                    }
                                },
                            }
                        ]
                    },
                }
            ],
        },
    }


def _same(a: Backend, b: Backend) -> bool:
    """Whether two backends are the same Service."""
    return (a.component, a.revision) == (b.component, b.revision)


def nginx_ingresses(
    isvc: InferenceService, plan: TrafficPlan, config: OperatorConfig
) -> list[dict[str, Any]]:
    """The main Ingress and, when needed, one canary Ingress (ingress-nginx)."""
    weighted = [b for b in plan.backends if b.weight > 0]
    if not weighted:
        raise RouteUnsupported("no backend receives traffic; nothing to route")
    main = max(weighted, key=lambda b: b.weight)
    others = [b for b in weighted if not _same(b, main)]
    if len(others) > 1:
        names = ", ".join(_service_name(isvc, b) for b in others)
        raise RouteUnsupported(
            f"ingress-nginx allows one canary per host, but traffic is split across "
            f"{len(weighted)} backends (canaries: {names}); use the Gateway API route mode"
        )
    if len(plan.header_routes) > 1:
        raise RouteUnsupported(
            f"ingress-nginx allows one header-matched canary per host, but there are "
            f"{len(plan.header_routes)} header routes; use the Gateway API route mode"
        )
    canary = others[0] if others else None
    annotations: dict[str, str] = {f"{NGINX}/canary": "true"}
    if canary is not None:
        annotations[f"{NGINX}/canary-weight"] = str(canary.weight)
        annotations[f"{NGINX}/canary-weight-total"] = "100"
    if plan.header_routes:
        route = plan.header_routes[0]
        if len(route.headers) != 1:
            raise RouteUnsupported(
                f"ingress-nginx matches a canary by one header, but the route to "
                f"{_service_name(isvc, route.backend)} needs {len(route.headers)}"
            )
        if _same(route.backend, main) or (canary is not None and not _same(route.backend, canary)):
            raise RouteUnsupported(
                "ingress-nginx sends header-matched and weighted canary traffic to the same "
                f"canary, but the header route goes to {_service_name(isvc, route.backend)}; "
                "use the Gateway API route mode"
            )
        ((header, value),) = route.headers
        annotations[f"{NGINX}/canary-by-header"] = header
        annotations[f"{NGINX}/canary-by-header-value"] = value
        canary = canary or route.backend
    main_annotations: dict[str, str] = {}
    if plan.mirror is not None:
        if plan.mirror.percent < 100:
            raise RouteUnsupported(
                f"ingress-nginx mirrors every request or none, but mirror.percent is "
                f"{plan.mirror.percent}; use the Gateway API route mode or percent 100"
            )
        target = _service_name(isvc, plan.mirror.backend)
        ns = isvc.metadata.namespace
        main_annotations[f"{NGINX}/mirror-target"] = (
            f"http://{target}.{ns}.svc.cluster.local:{HTTP_PORT}$request_uri"
        )
    if isvc.spec.tls is not None:  # ingress-nginx speaks TLS to the pods (no verification)
        for backend_side in (main_annotations, annotations):
            backend_side[f"{NGINX}/backend-protocol"] = "HTTPS"
        if plan.mirror is not None:
            mirror = main_annotations[f"{NGINX}/mirror-target"]
            main_annotations[f"{NGINX}/mirror-target"] = "https" + mirror.removeprefix("http")
    out = [_ingress(isvc, isvc.metadata.name, main, main_annotations, config)]
    if canary is not None:
        out.append(_ingress(isvc, f"{isvc.metadata.name}-canary", canary, annotations, config))
    return out


def majority_backend(plan: TrafficPlan) -> tuple[str, str] | None:
    """(component, revision) of the main predictor's highest-weight backend."""
    main = [b for b in plan.backends if b.component == MAIN_COMPONENT]
    if main:
        best = max(main, key=lambda b: b.weight)
        return best.component, best.revision
    workloads = [w for w in plan.workloads if w.component == MAIN_COMPONENT]
    return (workloads[0].component, workloads[0].revision) if workloads else None


def isvc_service(isvc: InferenceService, plan: TrafficPlan) -> dict[str, Any] | None:
    """The Service named after the InferenceService, for in-cluster clients."""
    target = majority_backend(plan)
    if target is None:
        return None
    name = isvc.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(isvc, name, labels(name, ROUTE_COMPONENT)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name, *target),
            "ports": service_ports(tls=isvc.spec.tls is not None),
        },
    }


def route_children(
    isvc: InferenceService, plan: TrafficPlan, config: OperatorConfig
) -> list[dict[str, Any]]:
    """The route objects of the configured ingress mode, plus the <isvc> Service."""
    out: list[dict[str, Any]] = []
    service = isvc_service(isvc, plan)
    if service is not None:
        out.append(service)
    if config.ingress_mode == "gateway":
        out.append(http_route(isvc, plan, config))
    elif config.ingress_mode == "nginx":
        out += nginx_ingresses(isvc, plan, config)
    return out
