"""The drift webhook: one CloudEvent (HTTP binary mode) naming the drifting features.

Limits: one POST per detection, with a deadline; a failure (transport, or a status
other than 2xx) raises :class:`WebhookError` and the reconcile pass tries again later
(the stored state says the receiver was not told). No authentication: point it at a
receiver in the cluster (a Knative broker, an Argo Events webhook source) or a URL whose
path carries its own secret.

The event: ``type`` :data:`EVENT_TYPE`, ``source`` the InferenceService's API path,
``subject`` its name, ``id`` unique per detection, JSON ``data``::

    {"namespace": "ml", "name": "iris", "revision": "8f3a...", "forSeconds": 600,
     "features": [{"name": "petal_length", "psi": 0.41, "threshold": 0.25,
                   "since": "2026-12-02T14:00:00Z"}]}
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import httpx
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from kubeserve.monitoring.drift import DriftFinding
from kubeserve_runtime.contract import GROUP, PLURAL, VERSION

EVENT_TYPE = "io.kubeserve.drift.detected"
TIMEOUT_SECONDS = 10.0


class WebhookError(RuntimeError):
    """The receiver could not be reached or refused the event."""


def _clock(finding: DriftFinding) -> str:
    return finding.since.strftime("%Y-%m-%dT%H:%M:%SZ")


def drift_event(
    namespace: str,
    name: str,
    revision: str,
    for_seconds: float,
    findings: Sequence[DriftFinding],
) -> CloudEvent:
    """The CloudEvent of one detection (its id is stable for the same detection)."""
    features = [
        {"name": f.feature, "psi": f.psi, "threshold": f.threshold, "since": _clock(f)}
        for f in findings
    ]
    key = "|".join([namespace, name, revision, *(f"{f.feature}@{_clock(f)}" for f in findings)])
    attributes = {
        "type": EVENT_TYPE,
        "source": f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}",
        "subject": name,
        "id": hashlib.sha256(key.encode()).hexdigest()[:32],
        "datacontenttype": "application/json",
    }
    data = {
        "namespace": namespace,
        "name": name,
        "revision": revision,
        "forSeconds": for_seconds,
        "features": features,
    }
    return CloudEvent(attributes, data)


async def send(url: str, event: CloudEvent, *, client: httpx.AsyncClient | None = None) -> None:
    """POST `event` to `url` in binary mode; WebhookError unless the answer is 2xx."""
    headers, body = to_binary(event)
    own = client is None
    http = client if client is not None else httpx.AsyncClient()
    try:
        response = await http.post(url, headers=headers, content=body, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        raise WebhookError(f"POST {url}: {type(exc).__name__}: {exc}") from exc
    finally:
        if own:
            await http.aclose()
    if not response.is_success:
        raise WebhookError(f"POST {url}: HTTP {response.status_code}")
