"""Admission of REST requests that carry a body, decided before the body is read.

Limits first: at most ``max_requests`` inference requests (V1 predict, V2 infer) are
handled at once, and the bodies they hold add up to at most ``max_bytes``; a request
past either gets 503 + ``Retry-After`` without a byte of its body read, so a burst of
large bodies cannot exhaust memory or starve small requests. A body is charged its
Content-Length; a body without one (chunked) or with a Content-Encoding (it may inflate)
is charged the full body limit, the most it can become. A Content-Length over the body
limit is refused first (413: retrying cannot help). The charge is held until the
request is answered, covering the parsed form of the body as well.
"""

from __future__ import annotations

from kubeserve_runtime.errors import InvalidInput, Overloaded, PayloadTooLarge


def declared_length(value: bytes | str | None) -> int | None:
    """Return a Content-Length header's value (None when absent; 400 when not a number)."""
    if value is None:
        return None
    try:
        size = int(value)
    except ValueError:
        raise InvalidInput("Content-Length must be an integer") from None
    if size < 0:
        raise InvalidInput("Content-Length must not be negative")
    return size


def body_charge(declared: int | None, encoded: bool, body_limit: int) -> int:
    """Return the bytes a body is charged: its length, or the limit when it may grow."""
    if declared is None or encoded:
        return body_limit
    return declared


def admits(requests: int, held: int, charge: int, max_requests: int, max_bytes: int) -> bool:
    """Whether a request charged ``charge`` bytes fits beside those already admitted."""
    return requests < max_requests and held + charge <= max_bytes


class Admission:
    """Counts the admitted REST inference requests and their bytes; refuses past the caps."""

    def __init__(self, max_requests: int, max_bytes: int, body_limit: int) -> None:
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.body_limit = body_limit
        self.requests = 0
        self.held = 0

    def admit(self, declared: int | None, encoded: bool) -> int:
        """Admit a request with this Content-Length; return its charge (413/503 if not)."""
        limit = self.body_limit
        if declared is not None and declared > limit:
            raise PayloadTooLarge(
                f"request body of {declared} bytes exceeds the {limit}-byte limit"
            )
        charge = body_charge(declared, encoded, limit)
        if not admits(self.requests, self.held, charge, self.max_requests, self.max_bytes):
            raise Overloaded("too many request bodies are being handled; retry later")
        self.requests += 1
        self.held += charge
        return charge

    def release(self, charge: int) -> None:
        """Return an admitted request's charge."""
        self.requests -= 1
        self.held -= charge
