"""The replay cache: which (sender, nonce) pairs were accepted, until they expire (pure twin).

Entries expire ``window_ms`` after the request's own timestamp (a request older than the
skew window is refused before the cache is consulted, so forgetting it then is safe).
Memory is bounded by ``capacity``: when every slot holds an unexpired entry, :meth:`add`
raises ``OverflowError`` rather than forget an entry early, which would reopen the window.
"""

from __future__ import annotations

from collections import deque

__all__ = ("ReplayCache",)


class ReplayCache:
    """Bounded set of recently accepted (sender, nonce) pairs."""

    def __init__(self, capacity: int, window_ms: int) -> None:
        if capacity < 1 or window_ms < 1:
            raise ValueError("capacity and window_ms must be positive")
        self.capacity = capacity
        self.window_ms = window_ms
        self._entries: dict[str, int] = {}
        self._order: deque[tuple[int, str]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def seen(self, sender: str, nonce: str) -> bool:
        """Whether this pair was accepted and has not expired yet."""
        return f"{sender}:{nonce}" in self._entries

    def expire(self, now_ms: int) -> int:
        """Forget entries whose time has passed; returns how many were dropped."""
        dropped = 0
        order, entries = self._order, self._entries
        while order and order[0][0] <= now_ms:
            _, key = order.popleft()
            del entries[key]
            dropped += 1
        return dropped

    def add(self, sender: str, nonce: str, timestamp_ms: int, now_ms: int) -> bool:
        """Record an accepted pair; False if it is already there (a replay).

        :raises OverflowError: the cache is full of unexpired entries.
        """
        key = f"{sender}:{nonce}"
        if key in self._entries:
            return False
        if len(self._entries) >= self.capacity:
            self.expire(now_ms)
            if len(self._entries) >= self.capacity:
                raise OverflowError("replay cache full of unexpired entries")
        expires = timestamp_ms + self.window_ms
        self._entries[key] = expires
        self._order.append((expires, key))
        return True

    def snapshot(self, now_ms: int) -> list[tuple[str, int]]:
        """The unexpired entries as ``(key, expires_ms)``, oldest first, for persisting."""
        return [(key, expires) for expires, key in self._order if expires > now_ms]

    def restore(self, entries: list[tuple[str, int]], now_ms: int) -> None:
        """Load a snapshot (unexpired entries only, up to the capacity)."""
        for key, expires in entries:
            if expires > now_ms and key not in self._entries and len(self._entries) < self.capacity:
                self._entries[key] = int(expires)
                self._order.append((int(expires), key))
