"""The feedback metric families: what ground truth says about each revision and variant.

Labels ``model``, ``version`` (the revision, as on ``kubeserve_requests_total``) and
``variant`` come from the token, i.e. from the replica that made the prediction, not
the one that scored it: feedback may go to any replica, so a query sums over all pods
of the InferenceService. Limits: ``predicted`` and ``actual`` are label values, so the
classes a replica has seen are capped (``feedback_max_classes``); truths naming a new
class beyond the cap are refused (reason ``too_many_classes``).

- ``kubeserve_feedback_total{model,version,variant,predicted,actual}``: the confusion
  matrix of classifiers, one count per scored value;
- ``kubeserve_feedback_correct_total{model,version,variant,class}``: its diagonal (PromQL
  cannot match two labels' values, so accuracy, precision and recall read this);
- ``kubeserve_feedback_absolute_error`` and ``kubeserve_feedback_squared_error``
  (summaries: ``_sum`` and ``_count``) for regression;
- ``kubeserve_feedback_reward`` (summary) for rewards, with
  ``kubeserve_feedback_reward_squared_total`` (the sum of squared rewards, for the
  variance an A/B experiment's ``reward`` metric needs) and
  ``kubeserve_feedback_conversions_total`` (rewards > 0, the ``conversion`` metric);
- ``kubeserve_feedback_rejected_total{model,reason}``: refused items, by reason;
- ``kubeserve_feedback_tokens_withheld_total{model,version,reason}``: responses sent
  without a token (``too_many_values``).

docs/DESIGN.md ("Feedback") has the PromQL for accuracy, precision, recall, F1, MAE and
RMSE, and the chart's PrometheusRule records them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Summary

from kubeserve_runtime.feedback.token import Prediction

_BASE = ["model", "version", "variant"]


class QualityMetrics:
    """The feedback families of one runtime process."""

    def __init__(self, registry: CollectorRegistry, model: str, version: str) -> None:
        self._model = model
        self._version = version
        self.confusion = Counter(
            "kubeserve_feedback",
            "Scored predictions of classifiers, by predicted and actual class.",
            [*_BASE, "predicted", "actual"],
            registry=registry,
        )
        self.correct = Counter(
            "kubeserve_feedback_correct",
            "Scored predictions of classifiers that were right, by class (the confusion "
            "matrix's diagonal, so accuracy, precision and recall need no label matching).",
            [*_BASE, "class"],
            registry=registry,
        )
        self.absolute_error = Summary(
            "kubeserve_feedback_absolute_error",
            "Absolute errors |predicted - truth| of scored regression predictions.",
            _BASE,
            registry=registry,
        )
        self.squared_error = Summary(
            "kubeserve_feedback_squared_error",
            "Squared errors (predicted - truth)^2 of scored regression predictions.",
            _BASE,
            registry=registry,
        )
        self.reward = Summary(
            "kubeserve_feedback_reward",
            "Rewards sent for predictions.",
            _BASE,
            registry=registry,
        )
        self.reward_squares = Counter(
            "kubeserve_feedback_reward_squared",
            "Sum of squared rewards (with the reward summary, their variance).",
            _BASE,
            registry=registry,
        )
        self.conversions = Counter(
            "kubeserve_feedback_conversions",
            "Rewards greater than zero (conversions).",
            _BASE,
            registry=registry,
        )
        self._rejected = Counter(
            "kubeserve_feedback_rejected",
            "Feedback items refused, by reason.",
            ["model", "reason"],
            registry=registry,
        )
        self._withheld = Counter(
            "kubeserve_feedback_tokens_withheld",
            "Responses sent without a feedback token, by reason.",
            ["model", "version", "reason"],
            registry=registry,
        )

    def classified(self, prediction: Prediction, pairs: list[tuple[str, str]]) -> None:
        """Count (predicted, actual) class pairs of one prediction."""
        labels = (prediction.model, prediction.revision, prediction.variant)
        for predicted, actual in pairs:
            self.confusion.labels(*labels, predicted, actual).inc()
            if predicted == actual:
                self.correct.labels(*labels, actual).inc()

    def regressed(self, prediction: Prediction, errors: list[float]) -> None:
        """Record the errors (predicted - truth) of one prediction."""
        labels = (prediction.model, prediction.revision, prediction.variant)
        absolute, squared = self.absolute_error.labels(*labels), self.squared_error.labels(*labels)
        for error in errors:
            absolute.observe(abs(error))
            squared.observe(error * error)

    def rewarded(self, prediction: Prediction, reward: float) -> None:
        """Record the reward of one prediction."""
        labels = (prediction.model, prediction.revision, prediction.variant)
        self.reward.labels(*labels).observe(reward)
        self.reward_squares.labels(*labels).inc(reward * reward)
        if reward > 0:
            self.conversions.labels(*labels).inc()

    def rejected(self, reason: str) -> None:
        """Count one refused item."""
        self._rejected.labels(self._model, reason).inc()

    def withheld(self, reason: str) -> None:
        """Count one response that went out without a token."""
        self._withheld.labels(self._model, self._version, reason).inc()
