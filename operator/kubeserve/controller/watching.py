"""Small waits on live objects for tests, the demo and benchmarks (watch, not poll)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes import client, watch

from kubeserve_runtime.contract import GROUP, PLURAL, VERSION


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    """The condition of `type_` in obj.status.conditions, if any."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def is_ready(obj: dict[str, Any]) -> bool:
    """Ready=True for the current generation."""
    cond = condition(obj, "Ready")
    status = obj.get("status") or {}
    return (
        cond is not None
        and cond.get("status") == "True"
        and status.get("observedGeneration") == obj["metadata"].get("generation")
    )


def wait_isvc(
    api: client.ApiClient,
    namespace: str,
    name: str,
    done: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Watch one InferenceService until `done(obj)`; raise TimeoutError naming `what`."""
    custom = client.CustomObjectsApi(api)
    last: dict[str, Any] = {}
    stream = watch.Watch()
    for event in stream.stream(
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        field_selector=f"metadata.name={name}",
        timeout_seconds=int(timeout),
    ):
        last = event["object"]
        if done(last):
            stream.stop()
            return last
    raise TimeoutError(
        f"{namespace}/{name}: {what} not reached in {timeout:.0f}s; last status: "
        f"{last.get('status')}"
    )
