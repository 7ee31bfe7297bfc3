"""The duplicate check: token ids already scored on this replica, bounded.

Limits first: the set is per replica and in memory. A token scored on replica A and
then sent to replica B is counted twice, and a restart forgets everything; only a
shared store (which the runtime deliberately does not need) could do better. It holds
at most ``capacity`` ids: entries whose token has expired are dropped first (an
expired token is refused anyway); when that is not enough, the oldest tenth goes (so
the sweep runs once per tenth of the capacity, not on every add), and a token whose
entry was evicted could be scored again on this replica.
"""

from __future__ import annotations


class SeenTokens:
    """Token ids (with the kind of feedback) already scored here, with their expiry."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("the seen-token capacity must be at least 1")
        self._capacity = capacity
        self._expires: dict[str, float] = {}  # insertion order = age

    def __contains__(self, key: object) -> bool:
        return key in self._expires

    def __len__(self) -> int:
        return len(self._expires)

    def add(self, key: str, expires: float, now: float) -> None:
        """Remember a scored id until ``expires``, making room first when full."""
        if len(self._expires) >= self._capacity:
            kept = {k: e for k, e in self._expires.items() if e > now}
            if len(kept) >= self._capacity:
                keep = self._capacity - max(1, self._capacity // 10)
                kept = dict(list(kept.items())[len(kept) - keep :])
            self._expires = kept
        self._expires[key] = expires
