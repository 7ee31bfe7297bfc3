"""The model size limit: how many bytes one download may put on the model volume.

Limits: bytes of file content are counted, not filesystem blocks or inodes (the member
cap in ``archive`` bounds that overhead); a ``--link`` of a local source costs nothing.

The operator renders ``KUBESERVE_MAX_MODEL_BYTES`` (integer bytes) from the
InferenceService and sizes the model ``emptyDir`` (``sizeLimit``) to match, so a
download fails here, with a message, before the kubelet would evict the pod for filling
its ephemeral storage. Without the variable (a manual run) the limit is
``DEFAULT_MAX_MODEL_BYTES``, 10 GiB.

Every writer charges the quota *before* writing: fetchers per chunk (and the whole
declared size first when the source states it), the unpacker for the whole archive
before anything is extracted and again per chunk. An archive stays on the volume while
it is unpacked, so its own bytes count until it is deleted: unpacking needs room for the
archive and its contents together, as the volume does.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubeserve_runtime import contract

MAX_MODEL_BYTES_ENV = contract.ENV_MAX_MODEL_BYTES
DEFAULT_MAX_MODEL_BYTES = 10 * 1024**3


class QuotaExceeded(Exception):
    """Writing would take the model past the size limit."""


def max_model_bytes(config: Mapping[str, str]) -> int:
    """The limit from KUBESERVE_MAX_MODEL_BYTES (positive integer bytes), or the default."""
    raw = (config.get(MAX_MODEL_BYTES_ENV) or "").strip()
    if not raw:
        return DEFAULT_MAX_MODEL_BYTES
    if not (raw.isascii() and raw.isdigit()) or int(raw) <= 0:
        raise ValueError(f"{MAX_MODEL_BYTES_ENV} must be a positive integer (bytes), got {raw!r}")
    return int(raw)


class Quota:
    """Bytes written so far against the limit; ``charge`` before writing."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def require(self, size: int, what: str) -> None:
        """Raise QuotaExceeded, naming what, unless size more bytes fit."""
        if self.used + size > self.limit:
            raise QuotaExceeded(
                f"{what} would take the model past its size limit of {self.limit} bytes "
                f"({MAX_MODEL_BYTES_ENV}; {self.used} bytes already on the volume)"
            )

    def charge(self, size: int, what: str) -> None:
        """Count size more bytes, or raise QuotaExceeded naming what needed them."""
        self.require(size, what)
        self.used += size

    def refund(self, size: int) -> None:
        """Give back the bytes of something deleted (an unpacked archive)."""
        self.used = max(0, self.used - size)
