"""Decide whether a live child already holds what we want, so we never write needlessly.

Limits: a change made by hand *inside* an atomic list the operator owns (adding an
element field the desired object does not mention, e.g. a filter in an HTTPRoute rule)
is not seen as drift; changed or removed values are.

Two questions decide an apply:

* Did the desired object change since kubeserve last applied it? A subset test alone
  cannot tell when the new desired object merely *lost* a field (a removed mirror, a
  label, an annotation such as nginx ``canary-weight``): the old value is still on the
  live object, so everything desired is "present" and the field would stay forever.
  Each applied object therefore carries the applied-hash annotation — a hash of exactly what
  was applied — and a different hash means "apply", after which server-side apply
  removes the fields our field manager no longer sets.
* Did someone else change it (drift)? The live object carries fields the API server
  defaulted and fields other managers own, so this is a *subset* test: every field we
  set must be present with the same value. Lists are compared element-wise with the
  same rule (our builders write lists in a deterministic order, and the API server
  keeps the order of list elements).

Both are one test: the stamped annotation is itself a desired field, so
:func:`needs_apply` on a :func:`stamp`-ed object is the subset test. An idle pass
computes the same hash and sends nothing. The hash is taken before the reconcile pass
puts the HPA's live replica count into a Deployment, so autoscaling causes no writes.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from kubeserve_runtime.contract import ANNOTATION_APPLIED_HASH

IGNORED_METADATA = frozenset({"resourceVersion", "uid", "generation", "creationTimestamp"})


def applied_hash(obj: Mapping[str, Any]) -> str:
    """A short, stable hash of `obj` as it will be applied (without its own stamp)."""
    meta = dict(obj.get("metadata") or {})
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k != ANNOTATION_APPLIED_HASH
    }
    meta["annotations"] = annotations
    if not annotations:
        del meta["annotations"]
    canonical = json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def stamp(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `obj` annotated with the hash of its content (the applied-hash)."""
    stamped = copy.deepcopy(dict(obj))
    meta = stamped.setdefault("metadata", {})
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        ANNOTATION_APPLIED_HASH: applied_hash(obj),
    }
    return stamped


def contains(live: Any, desired: Any) -> bool:
    """Return True when every field of `desired` is in `live` with an equal value."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(k in live and contains(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(contains(lv, dv) for lv, dv in zip(live, desired, strict=True))
    if isinstance(desired, bool) or isinstance(live, bool):
        return live is desired
    if isinstance(desired, int | float) and isinstance(live, int | float):
        return float(live) == float(desired)
    return bool(live == desired)


def needs_apply(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Return True when `desired` must be (re)applied over `live`.

    `desired` should be :func:`stamp`-ed, so that a removed field counts too.
    """
    if live is None:
        return True
    meta = {k: v for k, v in desired.get("metadata", {}).items() if k not in IGNORED_METADATA}
    body = {k: v for k, v in desired.items() if k not in ("metadata", "status")}
    return not (contains(live.get("metadata", {}), meta) and contains(live, body))


def prune_none(value: Any) -> Any:
    """`value` without the None entries of its mappings (absent and null mean the same)."""
    if isinstance(value, Mapping):
        return {k: prune_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune_none(v) for v in value]
    return value


def merge_patch(live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns `live` into `desired`; {} when equal.

    Keys of `live` missing from `desired` become null (removed); nested mappings are
    diffed recursively; lists and scalars are replaced when they differ.
    """
    patch: dict[str, Any] = {key: None for key in live if key not in desired}
    for key, want in desired.items():
        have = live.get(key)
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            sub = merge_patch(have, want)
            if sub:
                patch[key] = sub
        elif key not in live or not _same(have, want):
            patch[key] = want
    return patch


def _same(have: Any, want: Any) -> bool:
    return contains(have, want) and contains(want, have)
