"""The one error type of the storage initializer: a URI and a human-readable cause."""

from __future__ import annotations


class StorageError(Exception):
    """A download failed; ``str()`` is one line naming the URI and the cause."""

    def __init__(self, uri: str, cause: str) -> None:
        super().__init__(f"{uri}: {cause}")
        self.uri = uri
        self.cause = cause
