"""The operator's only door to the API server: apply, delete, status patch, get, events.

Limits: a request that hangs is abandoned after :data:`API_TIMEOUT_SECONDS` per attempt
(urllib3 retries idempotent requests up to three times), so a dead connection delays a
pass by minutes at worst, never forever; the work queue's pass timeout bounds the whole
pass on top of that.

A thin layer over the official client's DynamicClient (server-side apply with field
manager ``kubeserve`` and force, merge patches for status). The client is synchronous,
so every call runs in a worker thread; each call is counted by verb and kind so the
benchmark and /metrics can report API requests per reconcile.

Every request — discovery included, which the DynamicClient sends on its own — goes
through :class:`TimedRESTClient`, which gives it a timeout when the caller set none:
the client's default is to wait forever, and one hung connection would park its key in
the work queue for good. Discovery waits for the first call (in its worker thread),
so building a :class:`Kube` sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client import rest
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from kubeserve.controller.metrics import OperatorMetrics
from kubeserve_runtime.contract import API_VERSION, KIND

__all__ = ["API_TIMEOUT_SECONDS", "ConflictError", "Kube", "NotFoundError", "TimedRESTClient"]

FIELD_MANAGER = "kubeserve"

API_TIMEOUT_SECONDS = 30.0
"""Longest wait for one API request attempt (connect, send and read the answer)."""


class TimedRESTClient(rest.RESTClientObject):  # type: ignore[misc]
    """The client's REST transport with a default timeout on every request."""

    def __init__(self, configuration: client.Configuration, timeout: float) -> None:
        super().__init__(configuration)
        self.timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        """Send one request; without a `_request_timeout` it gets :attr:`timeout`."""
        kwargs["_request_timeout"] = kwargs.get("_request_timeout") or self.timeout
        return super().request(method, url, *args, **kwargs)


class Kube:
    """Writes to the cluster on behalf of the reconcile pass."""

    def __init__(
        self,
        api_client: client.ApiClient,
        metrics: OperatorMetrics,
        timeout: float = API_TIMEOUT_SECONDS,
    ) -> None:
        api_client.rest_client = TimedRESTClient(api_client.configuration, timeout)
        self._api = api_client
        self._core = client.CoreV1Api(api_client)
        self._metrics = metrics
        self._dynamic_client: DynamicClient | None = None
        self._discovery = threading.Lock()

    def _resource(self, api_version: str, kind: str) -> Any:
        with self._discovery:
            if self._dynamic_client is None:
                self._dynamic_client = DynamicClient(self._api)
        return self._dynamic_client.resources.get(api_version=api_version, kind=kind)

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

    async def get_isvc(self, namespace: str, name: str) -> dict[str, Any] | None:
        """Read one InferenceService from the API server; None when it is gone."""

        def call() -> dict[str, Any] | None:
            try:
                result = self._resource(API_VERSION, KIND).get(name=name, namespace=namespace)
            except NotFoundError:
                return None
            return dict(result.to_dict())

        self._count("get", KIND)
        return await asyncio.to_thread(call)

    async def patch_status(
        self, namespace: str, name: str, status: Mapping[str, Any], resource_version: str
    ) -> dict[str, Any]:
        """Merge-patch the status subresource of an InferenceService; return the result.

        The patch carries `resource_version`, the version the status was computed from:
        the API server refuses it with 409 (:class:`ConflictError`) when the object
        changed since, so a status decided from an old spec or an old rollout state is
        never written over a newer one.
        """

        def call() -> dict[str, Any]:
            resource = self._resource(API_VERSION, KIND)
            result = resource.status.patch(
                body={"metadata": {"resourceVersion": resource_version}, "status": dict(status)},
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
