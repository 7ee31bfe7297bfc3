"""Names, labels and owner references shared by every child object.

Every child carries the recommended ``app.kubernetes.io/*`` labels, the
``serving.kubeserve.io/*`` labels the operator selects and prunes by, and an owner
reference to its InferenceService (controller, blockOwnerDeletion) so the garbage
collector deletes it with its parent.
"""

from __future__ import annotations

from typing import Any

from kubeserve.api.v1alpha1 import InferenceService
from kubeserve_runtime.contract import (
    API_VERSION,
    KIND,
    LABEL_COMPONENT,
    LABEL_ISVC,
    LABEL_REVISION,
    LABEL_VARIANT,
)

MANAGER = "kubeserve"
APP_NAME = "kubeserve-predictor"
ROUTE_COMPONENT = "router"
"""app.kubernetes.io/component of the objects that route to all revisions."""


def selector_labels(isvc: str, component: str, revision: str) -> dict[str, str]:
    """Labels that select the pods of one revision of one component (immutable)."""
    return {LABEL_ISVC: isvc, LABEL_VARIANT: component, LABEL_REVISION: revision}


def labels(isvc: str, component: str, revision: str | None = None) -> dict[str, str]:
    """Labels of a child; revision-less children (routes) omit the revision label."""
    out = {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/instance": isvc,
        LABEL_COMPONENT: component,
        "app.kubernetes.io/managed-by": MANAGER,
        "app.kubernetes.io/part-of": "kubeserve",
        LABEL_ISVC: isvc,
    }
    if revision is not None:
        out[LABEL_VARIANT] = component
        out[LABEL_REVISION] = revision
    return out


def owner_reference(isvc: InferenceService) -> dict[str, Any]:
    """The controller owner reference to the InferenceService."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": isvc.metadata.name,
        "uid": isvc.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(
    isvc: InferenceService,
    name: str,
    object_labels: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Metadata of a child; ownerReferences only when the parent's uid is known."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": isvc.metadata.namespace,
        "labels": object_labels,
    }
    if annotations:
        meta["annotations"] = annotations
    if isvc.metadata.uid:
        meta["ownerReferences"] = [owner_reference(isvc)]
    return meta
