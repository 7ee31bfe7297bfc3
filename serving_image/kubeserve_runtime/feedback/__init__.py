"""Ground-truth feedback: tokens on every prediction, scored later into quality metrics.

Modules, top-down: ``service`` (what the transports call: issue a token, score a
feedback request), ``items`` (one feedback item checked against its token), ``token``
(signing and verifying tokens with an HMAC key every replica shares), ``seen`` (the
per-replica duplicate set), ``quality`` (the metric families).
"""

from kubeserve_runtime.feedback.service import FeedbackRefused, FeedbackService

__all__ = ["FeedbackRefused", "FeedbackService"]
