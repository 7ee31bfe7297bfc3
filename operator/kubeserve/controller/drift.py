"""Decide whether a live object already holds what we want, so we never write needlessly.

Server-side apply would accept an identical object as a no-op, but it is still a
request; the idle goal is zero writes. The live object carries fields the API server
defaulted and fields other managers own, so equality is a *subset* test: every field we
set must be present with the same value. Lists are compared element-wise with the
same rule (our builders write lists in a deterministic order, and the API server keeps
the order of list elements).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

IGNORED_METADATA = frozenset({"resourceVersion", "uid", "generation", "creationTimestamp"})


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
    """Return True when `desired` must be (re)applied over `live`."""
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
