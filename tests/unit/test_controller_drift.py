"""Apply decisions: server additions never cause a write; user edits and removals do."""

from __future__ import annotations

import copy
from typing import Any

from kubeserve.controller.drift import (
    applied_hash,
    contains,
    merge_patch,
    needs_apply,
    prune_none,
    stamp,
)
from kubeserve_runtime.contract import ANNOTATION_APPLIED_HASH

DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "iris", "namespace": "ml", "labels": {"a": "b"}},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [{"name": "c", "image": "img", "ports": [{"containerPort": 8080}]}]
            }
        },
    },
}


def live_copy() -> dict[str, Any]:
    """DESIRED as the API server returns it: defaulted fields and server metadata added."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "iris",
            "namespace": "ml",
            "labels": {"a": "b", "other-tool": "x"},
            "resourceVersion": "42",
            "uid": "u",
            "generation": 3,
        },
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 10,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "img",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "terminationMessagePath": "/dev/termination-log",
                        }
                    ]
                }
            },
        },
        "status": {"readyReplicas": 2},
    }


def test_server_defaults_are_not_drift() -> None:
    """Fields the server added or other managers own do not trigger an apply."""
    assert not needs_apply(DESIRED, live_copy())


def test_missing_object_needs_apply() -> None:
    """A child that does not exist is created."""
    assert needs_apply(DESIRED, None)


def test_hand_edit_is_drift() -> None:
    """A changed value, a removed label or a changed list length is repaired."""
    edited = live_copy()
    edited["spec"]["replicas"] = 5
    assert needs_apply(DESIRED, edited)
    unlabelled = live_copy()
    del unlabelled["metadata"]["labels"]["a"]
    assert needs_apply(DESIRED, unlabelled)
    more = live_copy()
    more["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    assert needs_apply(DESIRED, more)


def test_numbers_and_booleans() -> None:
    """1 and 1.0 are equal; True is not 1."""
    assert contains({"x": 1.0}, {"x": 1})
    assert not contains({"x": 1}, {"x": True})
    assert contains({"x": True}, {"x": True})


def test_merge_patch_removes_what_is_gone_and_sends_only_changes() -> None:
    """A status diff nulls removed keys, recurses into objects and is empty when equal."""
    live = {"revisions": {"stable": {"hash": "a"}, "canary": {"hash": "b"}}, "url": "u", "n": 1}
    desired = {"revisions": {"stable": {"hash": "b"}}, "url": "u", "n": 1.0}
    assert merge_patch(live, desired) == {"revisions": {"stable": {"hash": "b"}, "canary": None}}
    assert merge_patch(desired, desired) == {}
    assert merge_patch({"c": [1, 2]}, {"c": [1]}) == {"c": [1]}


def test_prune_none() -> None:
    """None entries are dropped at every depth, list items kept."""
    assert prune_none({"a": None, "b": {"c": None, "d": [{"e": None}]}}) == {"b": {"d": [{}]}}


def with_meta(key: str, value: dict[str, str]) -> dict[str, Any]:
    """DESIRED with metadata.`key` replaced."""
    obj = copy.deepcopy(DESIRED)
    obj["metadata"][key] = value
    return obj


def applied(desired: dict[str, Any]) -> dict[str, Any]:
    """`desired` as stored after server-side apply: stamped, defaulted, server metadata."""
    live = live_copy()
    live["metadata"]["annotations"] = stamp(desired)["metadata"]["annotations"]
    live["metadata"]["labels"] = {**desired["metadata"]["labels"], "other-tool": "x"}
    return live


def test_an_idle_pass_applies_nothing() -> None:
    """What was applied (same hash) plus server defaults is in sync."""
    assert not needs_apply(stamp(DESIRED), applied(DESIRED))


def test_a_desired_object_that_only_lost_a_field_is_applied() -> None:
    """Removing a label or an annotation changes the hash, so it reaches the child; the
    subset test alone calls the live object (which still has it) in sync."""
    with_annotation = with_meta("annotations", {"canary-weight": "20"})
    live = applied(with_annotation)
    without = copy.deepcopy(DESIRED)
    assert not needs_apply(without, live)  # the old decision: "everything desired is there"
    assert needs_apply(stamp(without), live)
    unlabelled = with_meta("labels", {})
    assert needs_apply(stamp(unlabelled), applied(DESIRED))


def test_drift_is_still_repaired_when_the_hash_matches() -> None:
    """A hand edit of a field we set is an apply even though the stamp is unchanged."""
    live = applied(DESIRED)
    live["spec"]["replicas"] = 5
    assert needs_apply(stamp(DESIRED), live)


def test_the_hash_is_stable_and_ignores_its_own_stamp() -> None:
    """Key order does not matter; stamping a stamped object changes nothing."""
    reordered = dict(reversed(list(DESIRED.items())))
    assert applied_hash(reordered) == applied_hash(DESIRED)
    assert stamp(stamp(DESIRED)) == stamp(DESIRED)
    assert applied_hash(stamp(DESIRED)) == applied_hash(DESIRED)
    assert stamp(DESIRED)["metadata"]["annotations"] == {
        ANNOTATION_APPLIED_HASH: applied_hash(DESIRED)
    }
    assert "annotations" not in DESIRED["metadata"]
