"""The operator's only door to the API server: apply, delete, status patch, events.

A thin layer over the official client's DynamicClient (server-side apply with field
manager ``kubeserve`` and force, merge patches for status). The client is synchronous,
so every call runs in a worker thread; each call is counted by verb and kind so the
benchmark and /metrics can report API requests per reconcile.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from kubeserve.controller.metrics import OperatorMetrics

FIELD_MANAGER = "kubeserve"
GROUP = "serving.kubeserve.io"
VERSION = "v1alpha1"
PLURAL = "inferenceservices"
KIND = "InferenceService"


class Kube:
    """Writes to the cluster on behalf of the reconcile pass."""

    def __init__(self, api_client: client.ApiClient, metrics: OperatorMetrics) -> None:
        self._dynamic = DynamicClient(api_client)
        self._core = client.CoreV1Api(api_client)
        self._metrics = metrics

    def _resource(self, api_version: str, kind: str) -> Any:
        return self._dynamic.resources.get(api_version=api_version, kind=kind)

    def _count(self, verb: str, kind: str) -> None:
        self._metrics.api_requests.labels(verb=verb, kind=kind).inc()

    async def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply `obj` (field manager kubeserve, force) and return the result."""
        kind = str(obj["kind"])
        meta = obj["metadata"]

        def call() -> dict[str, Any]:
            resource = self._resource(str(obj["apiVersion"]), kind)
            result = resource.server_side_apply(
                body=dict(obj),
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
            return dict(result.to_dict())

        self._count("apply", kind)
        return await asyncio.to_thread(call)

    async def list_pods(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Pods matching `labels` as Kubernetes JSON (camelCase), for metrics scraping."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

        def call() -> list[dict[str, Any]]:
            pods = self._core.list_namespaced_pod(namespace, label_selector=selector)
            return [self._core.api_client.sanitize_for_serialization(p) for p in pods.items]

        self._count("list", "Pod")
        return await asyncio.to_thread(call)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete one object; a missing object is not an error."""

        def call() -> None:
            with contextlib.suppress(NotFoundError):
                self._resource(api_version, kind).delete(
                    name=name, namespace=namespace, body={"propagationPolicy": "Background"}
                )

        self._count("delete", kind)
        await asyncio.to_thread(call)

    async def patch_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status subresource of an InferenceService; return the result."""

        def call() -> dict[str, Any]:
            resource = self._resource(f"{GROUP}/{VERSION}", KIND)
            result = resource.status.patch(
                body={"status": dict(status)},
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
            )
            return dict(result.to_dict())

        self._count("patch", f"{KIND}/status")
        return await asyncio.to_thread(call)

    async def event(self, owner: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Record a Kubernetes Event about `owner` (what the operator did, or why not)."""
        meta = owner["metadata"]
        now = dt.datetime.now(dt.UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                generate_name=f"{meta['name']}.", namespace=meta["namespace"]
            ),
            involved_object=client.V1ObjectReference(
                api_version=owner["apiVersion"],
                kind=owner["kind"],
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta["uid"],
            ),
            type=type_,
            reason=reason,
            message=message[:1024],
            source=client.V1EventSource(component=FIELD_MANAGER),
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            reporting_component=FIELD_MANAGER,
        )
        self._count("create", "Event")
        await asyncio.to_thread(self._core.create_namespaced_event, meta["namespace"], body)
