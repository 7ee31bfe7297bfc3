"""What the transports call: a token for each response, scoring of feedback requests.

Limits first: tokens are issued only when a key file is configured
(``feedback_key_file``; the operator mounts the InferenceService's Secret there), and
carry the values of the response's *first* output, flattened, at most
``feedback_max_values`` of them (a response beyond that goes out without a token and is
counted). A feedback request is all or nothing: every item is checked (shape, token,
model, duplicates, truth) before any is recorded, and when one fails none is, and the
refusal lists each failing item with its reason (the HTTP status is that of the first
failing item's reason); the client drops or fixes those and sends the rest again. At
most ``MAX_ITEMS`` items per request. Duplicates are caught per replica (``seen``).
The task (classification or regression) is the ``feedback_task`` setting, or, on
``auto``, regression when the output is a floating-point tensor and classification
otherwise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from kubeserve_runtime.errors import ServingError
from kubeserve_runtime.feedback.items import (
    REASON_STATUS,
    ItemRefused,
    Score,
    read_item,
    score,
)
from kubeserve_runtime.feedback.quality import QualityMetrics
from kubeserve_runtime.feedback.seen import SeenTokens
from kubeserve_runtime.feedback.token import Prediction, Task, TokenInvalid, TokenSigner, read_keys
from kubeserve_runtime.payloads import Tensor
from kubeserve_runtime.settings import RuntimeSettings

MAX_ITEMS = 10_000
_SHOWN = 5
"""Refused items named in the message; the ``rejected`` list has them all."""
_FLOATS = frozenset({"FP16", "BF16", "FP32", "FP64"})
_GRPC_CODES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    409: "ALREADY_EXISTS",
    410: "FAILED_PRECONDITION",
}


class FeedbackRefused(ServingError):
    """A feedback request with at least one item that cannot be scored (nothing recorded)."""

    def __init__(self, rejected: list[dict[str, Any]]) -> None:
        shown = "; ".join(
            f"item {r['index']}: {r['reason']}: {r['error']}" for r in rejected[:_SHOWN]
        )
        more = len(rejected) - _SHOWN
        message = f"feedback refused, nothing recorded: {shown}"
        if more > 0:
            message += f"; and {more} more"
        super().__init__(message)
        self.rejected = rejected
        self.status_code = REASON_STATUS[rejected[0]["reason"]]
        self.grpc_code = _GRPC_CODES[self.status_code]


class FeedbackService:
    """Issues tokens and scores feedback for one runtime process."""

    def __init__(
        self,
        settings: RuntimeSettings,
        signer: TokenSigner,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._model = settings.model_name
        self._revision = settings.model_version or ""
        self._variant = settings.component
        self._task = settings.feedback_task
        self._ttl = settings.feedback_token_ttl_seconds
        self._max_values = settings.feedback_max_values
        self._max_classes = settings.feedback_max_classes
        self._signer = signer
        self._clock = clock
        self._seen = SeenTokens(settings.feedback_seen_capacity)
        self._classes: set[str] = set()
        self._lock = threading.Lock()
        self.metrics = QualityMetrics(registry, self._model, self._revision)

    @classmethod
    def from_settings(
        cls, settings: RuntimeSettings, registry: CollectorRegistry
    ) -> FeedbackService | None:
        """The service, or None when no key file is configured (feedback off)."""
        if settings.feedback_key_file is None:
            return None
        return cls(settings, TokenSigner(read_keys(settings.feedback_key_file)), registry)

    # -- tokens ------------------------------------------------------------------------

    def issue(self, outputs: list[Tensor]) -> str | None:
        """A token for a response with these outputs (None when it cannot carry one)."""
        if not outputs:
            return None
        first = outputs[0]
        if first.data.size > self._max_values:
            self.metrics.withheld("too_many_values")
            return None
        flat = first.data.ravel()
        if first.datatype == "BYTES":
            values: list[Any] = [v.decode("utf-8", "replace") for v in flat.tolist()]
        else:
            values = flat.tolist()
        task: Task
        if self._task == "auto":
            task = "regression" if first.datatype in _FLOATS else "classification"
        else:
            task = self._task
        return self._signer.issue(
            self._model, self._revision, self._variant, task, values, self._clock(), self._ttl
        )

    # -- feedback ----------------------------------------------------------------------

    def submit(self, model: str, body: Any) -> dict[str, Any]:
        """Score a feedback body (one item or a list); raise FeedbackRefused if any fails.

        Thread-safe: requests are scored one at a time (the duplicate set and the class
        set are checked and updated together)."""
        with self._lock:
            return self._submit(model, body)

    def _submit(self, model: str, body: Any) -> dict[str, Any]:
        """``submit`` under the lock."""
        raws = body if isinstance(body, list) else [body]
        if not raws:
            raise FeedbackRefused([_rejection(0, "malformed", "the body holds no items")])
        if len(raws) > MAX_ITEMS:
            raise FeedbackRefused(
                [_rejection(MAX_ITEMS, "malformed", f"at most {MAX_ITEMS} items per request")]
            )
        now = self._clock()
        accepted: list[tuple[str, Prediction, Score]] = []
        rejected: list[dict[str, Any]] = []
        keys: set[str] = set()
        classes = set(self._classes)
        for index, raw in enumerate(raws):
            try:
                key, prediction, scored = self._check(model, raw, keys, classes)
            except ItemRefused as exc:
                rejected.append(_rejection(index, exc.reason, exc.message))
                continue
            keys.add(key)
            accepted.append((key, prediction, scored))
        if rejected:
            for item in rejected:
                self.metrics.rejected(item["reason"])
            raise FeedbackRefused(rejected)
        self._classes = classes
        for key, prediction, scored in accepted:
            self._record(prediction, scored)
            self._seen.add(key, prediction.expires, now)
        return {"accepted": len(accepted)}

    def _check(
        self, model: str, raw: Any, keys: set[str], classes: set[str]
    ) -> tuple[str, Prediction, Score]:
        """Check one item; return its duplicate key, prediction and score."""
        item = read_item(raw)
        try:
            prediction = self._signer.verify(item.token)
        except TokenInvalid as exc:
            raise ItemRefused(exc.reason, exc.message) from None
        if prediction.model != model:
            raise ItemRefused(
                "wrong_model", f"the token was issued for model {prediction.model!r}, not {model!r}"
            )
        key = f"{prediction.token_id}/{item.kind}"
        if key in self._seen or key in keys:
            raise ItemRefused("duplicate", f"this token already has its {item.kind} (per replica)")
        scored = score(prediction, item)
        new = {label for pair in scored.pairs for label in pair} - classes
        if len(classes) + len(new) > self._max_classes:
            raise ItemRefused(
                "too_many_classes",
                f"more than {self._max_classes} distinct classes; new: {sorted(new)[:5]}",
            )
        classes |= new
        return key, prediction, scored

    def _record(self, prediction: Prediction, scored: Score) -> None:
        """Add one accepted item to the metrics."""
        if scored.kind == "reward":
            self.metrics.rewarded(prediction, scored.reward)
        elif scored.pairs:
            self.metrics.classified(prediction, scored.pairs)
        else:
            self.metrics.regressed(prediction, scored.errors)


def _rejection(index: int, reason: str, message: str) -> dict[str, Any]:
    """One entry of a refusal's ``rejected`` list."""
    return {"index": index, "reason": reason, "error": message}
