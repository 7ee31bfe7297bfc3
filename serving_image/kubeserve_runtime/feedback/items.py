"""One feedback item: ``{"token": ..., "truth": ...}`` or ``{"token": ..., "reward": ...}``.

Limits first: a truth names one value per predicted value the token carries (a scalar
when it carries one; lists may nest, they are flattened in row order); a reward is one
finite number per token. Classification values are class labels: strings, integers,
booleans, or floats that are whole numbers (``1.0`` is class ``1``), compared by their
label text; regression values are finite numbers. Every refusal names its reason, one of
``REASON_STATUS``'s keys, with the HTTP status it maps to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from kubeserve_runtime.feedback.token import Prediction

Kind = Literal["truth", "reward"]
REASON_STATUS: dict[str, int] = {
    "malformed": 400,
    "wrong_model": 400,
    "bad_truth": 400,
    "too_many_classes": 400,
    "forged": 403,
    "duplicate": 409,
    "expired": 410,
}
"""Why an item is refused, and the HTTP status of a refusal led by that reason."""


class ItemRefused(Exception):
    """An item that cannot be scored; ``reason`` is a key of REASON_STATUS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Item:
    """A feedback item whose shape was checked (its token not yet)."""

    token: str
    kind: Kind
    value: Any


@dataclass(slots=True)
class Score:
    """What one item adds to the metrics."""

    kind: Kind
    pairs: list[tuple[str, str]] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    reward: float = 0.0


def read_item(raw: Any) -> Item:
    """Check an item's shape: an object with ``token`` and exactly one of truth/reward."""
    if not isinstance(raw, dict):
        raise ItemRefused("malformed", "an item must be a JSON object with 'token' and 'truth'")
    token = raw.get("token")
    if not isinstance(token, str) or not token:
        raise ItemRefused("malformed", "'token' must be a non-empty string")
    extra = sorted(set(raw) - {"token", "truth", "reward"})
    if extra:
        raise ItemRefused("malformed", f"unknown field(s) {', '.join(map(repr, extra))}")
    kinds: list[Kind] = [k for k in ("truth", "reward") if k in raw]
    if len(kinds) != 1:
        raise ItemRefused("malformed", "an item needs exactly one of 'truth' or 'reward'")
    return Item(token=token, kind=kinds[0], value=raw[kinds[0]])


def class_label(value: Any) -> str:
    """The label text of a class value; ValueError for anything that is not a class."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value
    raise ValueError(f"{value!r} is not a class label (a string, integer or boolean)")


def _flatten(value: Any) -> list[Any]:
    """Flatten nested lists in row order; a scalar becomes a one-element list."""
    if not isinstance(value, list):
        return [value]
    out: list[Any] = []
    for element in value:
        out.extend(_flatten(element))
    return out


def _number(value: Any, what: str) -> float:
    """A finite number, or ItemRefused(bad_truth)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ItemRefused("bad_truth", f"{what} must be a finite number, not {value!r}")
    return float(value)


def score(prediction: Prediction, item: Item) -> Score:
    """Score an item against the prediction its token names (ItemRefused if it cannot)."""
    if item.kind == "reward":
        return Score(kind="reward", reward=_number(item.value, "'reward'"))
    truths = _flatten(item.value)
    if len(truths) != len(prediction.values):
        raise ItemRefused(
            "bad_truth",
            f"'truth' has {len(truths)} value(s); the prediction has {len(prediction.values)}",
        )
    if prediction.task == "regression":
        errors = [
            _number(p, "a predicted value") - _number(t, "a truth value")
            for p, t in zip(prediction.values, truths, strict=True)
        ]
        return Score(kind="truth", errors=errors)
    try:
        pairs = [
            (class_label(p), class_label(t)) for p, t in zip(prediction.values, truths, strict=True)
        ]
    except ValueError as exc:
        raise ItemRefused("bad_truth", str(exc)) from None
    return Score(kind="truth", pairs=pairs)
