"""Errors the data plane raises, each carrying the HTTP status and gRPC code it maps to.

Transports never guess: REST answers ``{"error": message}`` with ``status_code`` (plus
``Retry-After`` when set, ``WWW-Authenticate`` on 401), gRPC aborts with ``grpc_code``.
Anything else that escapes a handler is a bug and becomes a 500 / INTERNAL with a
generic message.
"""

from __future__ import annotations


class ServingError(Exception):
    """Base class: a request failed for a reason the caller should be told."""

    status_code = 500
    grpc_code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServingError):
    """The request is malformed or does not match the model's inputs (400)."""

    status_code = 400
    grpc_code = "INVALID_ARGUMENT"


class Unauthorized(ServingError):
    """A bearer token is required and was missing, malformed, expired or not trusted (401).

    ``reason`` is a short fixed word for metrics and the audit log (``missing``,
    ``invalid``, ``expired``...); ``subject`` is the token's subject when its signature
    was verified before another check failed (an expired token of a known caller).
    """

    status_code = 401
    grpc_code = "UNAUTHENTICATED"
    challenge = 'Bearer realm="kubeserve"'

    def __init__(self, message: str, reason: str = "invalid", subject: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.subject = subject


class Forbidden(ServingError):
    """A valid token whose subject or claims the policy does not allow (403)."""

    status_code = 403
    grpc_code = "PERMISSION_DENIED"

    def __init__(self, message: str, reason: str, subject: str | None) -> None:
        super().__init__(message)
        self.reason = reason
        self.subject = subject


class ModelNotFound(ServingError):
    """No model (or model version) by that name is served here (404)."""

    status_code = 404
    grpc_code = "NOT_FOUND"


class PayloadTooLarge(ServingError):
    """The request body exceeds the configured limit (413)."""

    status_code = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class UnsupportedEncoding(ServingError):
    """The body has a Content-Encoding the runtime cannot decode (415)."""

    status_code = 415
    grpc_code = "INVALID_ARGUMENT"


class NotSupported(ServingError):
    """The request asks for something this runtime does not serve, such as :explain (501)."""

    status_code = 501
    grpc_code = "UNIMPLEMENTED"


class Overloaded(ServingError):
    """The inference queue is full; the client should retry later (503)."""

    status_code = 503
    grpc_code = "UNAVAILABLE"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotReady(ServingError):
    """The model is still loading or the server is draining (503)."""

    status_code = 503
    grpc_code = "UNAVAILABLE"


class InferenceFailed(ServingError):
    """The model raised while predicting on input that passed validation (500)."""

    status_code = 500
    grpc_code = "INTERNAL"


class MissingExtraError(ImportError):
    """A model format needs an optional dependency that is not installed."""

    def __init__(self, fmt: str, package: str, extra: str) -> None:
        super().__init__(
            f"the {fmt} model format needs {package}, which is not installed: "
            f"pip install 'kubeserve[{extra}]'"
        )
        self.extra = extra


class ModelLoadError(Exception):
    """The model directory holds nothing this runtime can load."""
