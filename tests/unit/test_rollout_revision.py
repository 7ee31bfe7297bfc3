"""Revision names: short, stable hashes of predictor specs."""

from __future__ import annotations

import hashlib

from kubeserve.rollout.revision import canonical_json, revision_hash

SPEC = {
    "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://models/iris/v2"},
    "minReplicas": 1,
    "maxReplicas": 5,
}


def test_revision_is_eight_hex_chars_of_the_canonical_sha256() -> None:
    canonical = '{"maxReplicas":5,"minReplicas":1,"model":{"modelFormat":{"name":"sklearn"},"storageUri":"s3://models/iris/v2"}}'
    assert canonical_json(SPEC) == canonical
    assert revision_hash(SPEC) == hashlib.sha256(canonical.encode()).hexdigest()[:8]
    assert len(revision_hash(SPEC)) == 8
    int(revision_hash(SPEC), 16)


def test_revision_ignores_key_order_but_not_values() -> None:
    reordered = {
        "maxReplicas": 5,
        "model": {"storageUri": "s3://models/iris/v2", "modelFormat": {"name": "sklearn"}},
        "minReplicas": 1,
    }
    assert revision_hash(reordered) == revision_hash(SPEC)
    changed = {**SPEC, "model": {**SPEC["model"], "storageUri": "s3://models/iris/v3"}}  # type: ignore[dict-item]
    assert revision_hash(changed) != revision_hash(SPEC)
    assert revision_hash({**SPEC, "maxReplicas": 6}) != revision_hash(SPEC)
