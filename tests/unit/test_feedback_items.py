"""Feedback pieces without a server: item checks, scoring, token reasons, the seen set."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from kubeserve_runtime.feedback.items import ItemRefused, class_label, read_item, score
from kubeserve_runtime.feedback.seen import SeenTokens
from kubeserve_runtime.feedback.token import Prediction, TokenInvalid, TokenSigner, read_keys

NOW = 1_900_000_000.0  # a fixed "now" in the future, so fresh tokens are not expired


def _prediction(task: str, values: tuple[object, ...]) -> Prediction:
    return Prediction("iris", "r1", "predictor", task, values, NOW, NOW + 60, "id")  # type: ignore[arg-type]


def test_items_must_name_a_token_and_one_kind() -> None:
    assert read_item({"token": "t", "truth": 1}).kind == "truth"
    assert read_item({"token": "t", "reward": 0.5}).kind == "reward"
    for bad in ({"truth": 1}, {"token": "t"}, {"token": "t", "truth": 1, "reward": 1}, [1]):
        with pytest.raises(ItemRefused) as refused:
            read_item(bad)
        assert refused.value.reason == "malformed"


def test_classification_pairs_by_label_text() -> None:
    scored = score(
        _prediction("classification", (1, 2, "cat")),
        read_item({"token": "t", "truth": [[1.0], [0], ["cat"]]}),
    )
    assert scored.pairs == [("1", "1"), ("2", "0"), ("cat", "cat")]
    assert class_label(True) == "true"
    with pytest.raises(ValueError, match="not a class label"):
        class_label(0.5)


def test_truth_count_and_type_are_checked() -> None:
    classifier = _prediction("classification", (1, 2))
    for truth in (1, [1, 2, 3], [1, None]):
        with pytest.raises(ItemRefused) as refused:
            score(classifier, read_item({"token": "t", "truth": truth}))
        assert refused.value.reason == "bad_truth"
    regressor = _prediction("regression", (1.5,))
    assert score(regressor, read_item({"token": "t", "truth": 1.0})).errors == [0.5]
    with pytest.raises(ItemRefused):
        score(regressor, read_item({"token": "t", "truth": "1.0"}))
    with pytest.raises(ItemRefused):
        score(regressor, read_item({"token": "t", "reward": True}))


def test_token_round_trip_and_refusal_reasons(tmp_path: Path) -> None:
    key, other = secrets.token_bytes(32), secrets.token_bytes(32)
    signer = TokenSigner((key,))
    token = signer.issue("iris", "r1", "b", "classification", [0, 2], NOW, 60)
    got = signer.verify(token)
    assert (got.model, got.revision, got.variant, got.values) == ("iris", "r1", "b", (0, 2))
    assert TokenSigner((other, key)).verify(token).token_id == got.token_id  # rotation
    cases = [
        ("forged", TokenSigner((other,)), token),
        ("malformed", signer, token.replace(".", "!", 1)),
    ]
    for reason, verifier, given in cases:
        with pytest.raises(TokenInvalid) as refused:
            verifier.verify(given)
        assert refused.value.reason == reason
    expired = signer.issue("iris", "r1", "b", "classification", [0], 1_000_000_000.0, 60)
    with pytest.raises(TokenInvalid) as refused:
        signer.verify(expired)
    assert refused.value.reason == "expired"
    short = tmp_path / "short"
    short.write_text("# comment\ntoo-short\n")
    with pytest.raises(ValueError, match="shorter than 32 bytes"):
        read_keys(short)


def test_seen_set_drops_expired_entries_first_then_the_oldest_tenth() -> None:
    seen = SeenTokens(10)
    for i in range(10):
        seen.add(f"k{i}", expires=100.0 if i % 2 else 50.0, now=0.0)
    seen.add("new", expires=100.0, now=60.0)  # full: the five expired at 50 go
    assert len(seen) == 6
    assert "k0" not in seen
    assert all(k in seen for k in ("k1", "new"))
    for i in range(4):
        seen.add(f"more{i}", expires=100.0, now=60.0)
    seen.add("last", expires=100.0, now=60.0)  # full, nothing expired: oldest tenth goes
    assert len(seen) == 10
    assert "k1" not in seen
    assert all(k in seen for k in ("k3", "last"))
