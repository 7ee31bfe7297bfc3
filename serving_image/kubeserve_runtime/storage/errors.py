"""The one error type of the storage initializer: a URI and a human-readable cause.

Both are redacted here, once, so no caller can put a presigned signature or a password
into an error message: the URI itself, and any URI a library quoted in the cause.
"""

from __future__ import annotations

from kubeserve_runtime.storage.redaction import redact_text, redact_uri


class StorageError(Exception):
    """A download failed; ``str()`` is one line naming the (redacted) URI and the cause."""

    def __init__(self, uri: str, cause: str) -> None:
        self.uri = redact_uri(uri)
        self.cause = redact_text(cause)
        super().__init__(f"{self.uri}: {self.cause}")
