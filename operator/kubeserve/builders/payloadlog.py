"""The predictor's payload logger, rendered for the runtime container.

Limits: only a predictor served by the bundled runtime (``model``) logs payloads (the
API refuses ``logger`` beside ``containers``). Nothing is rendered without a logger, so
adding the feature changed no existing pod. With one: ``KUBESERVE_PAYLOAD_LOGGER``
holds the logger as the runtime's JSON (the API's camelCase shape, each http sink's
``headersSecretRef`` replaced by ``headersDir``, where that Secret is mounted read-only:
one file per key, the key the header's name), and ``KUBESERVE_NAMESPACE`` /
``KUBESERVE_COMPONENT`` name where events come from (the model name and revision are
already there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kubeserve.api.v1alpha1 import Logger
from kubeserve_runtime import contract

PAYLOAD_HEADERS_DIR = "/var/run/secrets/kubeserve/payload-headers"
"""Sink n's header Secret is mounted at ``<this>/<n>`` (n = the sink's index)."""


@dataclass(frozen=True)
class LoggerParts:
    """What a logger adds to the runtime container and its pod."""

    env: dict[str, str] = field(default_factory=dict)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)


def _volume_name(index: int) -> str:
    return f"payload-headers-{index}"


def runtime_logger(logger: Logger) -> dict[str, Any]:
    """The logger as the runtime reads it (``kubeserve_runtime.payloadlog.config``)."""
    out = logger.to_dict()
    for index, sink in enumerate(out.get("sinks") or ()):
        http = sink.get("http")
        if http is not None and http.pop("headersSecretRef", None) is not None:
            http["headersDir"] = f"{PAYLOAD_HEADERS_DIR}/{index}"
    return out


def logger_parts(logger: Logger | None, namespace: str, component: str) -> LoggerParts:
    """Env, volumes and mounts of a predictor's logger (empty without one)."""
    if logger is None:
        return LoggerParts()
    env = {
        contract.ENV_NAMESPACE: namespace,
        contract.ENV_COMPONENT: component,
        contract.ENV_PAYLOAD_LOGGER: json.dumps(
            runtime_logger(logger), sort_keys=True, separators=(",", ":")
        ),
    }
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for index, sink in enumerate(logger.sinks or ()):
        if sink.http is None or sink.http.headers_secret_ref is None:
            continue
        volumes.append(
            {
                "name": _volume_name(index),
                "secret": {"secretName": sink.http.headers_secret_ref.name, "defaultMode": 0o440},
            }
        )
        mounts.append(
            {
                "name": _volume_name(index),
                "mountPath": f"{PAYLOAD_HEADERS_DIR}/{index}",
                "readOnly": True,
            }
        )
    return LoggerParts(env, volumes, mounts)
