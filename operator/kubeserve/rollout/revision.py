"""Revisions: a short, stable name for one predictor spec.

A revision is the first 8 hex characters of the SHA-256 of the predictor spec in
canonical JSON (keys sorted, no whitespace). Equal specs give equal revisions whatever
the key order, so the name can be recomputed at any time from the spec alone (the
operator keeps no counter), and a GitOps revert of the spec yields the old revision
again, whose Deployment (named after it) may still exist.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

REVISION_LENGTH = 8
"""Hex characters kept from the digest: 32 bits, ample for the few revisions of one service."""


def canonical_json(value: Any) -> str:
    """Return `value` as canonical JSON: sorted keys, no whitespace, ASCII only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def revision_hash(predictor_spec: Mapping[str, Any]) -> str:
    """Return the revision name of a predictor spec (8 hex chars, order-independent)."""
    digest = hashlib.sha256(canonical_json(dict(predictor_spec)).encode("utf-8"))
    return digest.hexdigest()[:REVISION_LENGTH]
