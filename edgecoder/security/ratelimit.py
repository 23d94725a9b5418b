"""Token-bucket rate limits keyed by caller (API key, or a peer's node id), sans I/O.

Each key holds up to ``burst`` tokens refilled at ``rate`` per second; a request takes one.
At most ``max_keys`` buckets are kept: the least recently used is dropped first (a
dropped bucket comes back full, which only ever errs towards letting a request through).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ("TokenBuckets",)


class TokenBuckets:
    """Per-key token buckets over a caller-supplied monotonic clock (seconds)."""

    def __init__(self, rate: float, burst: float, max_keys: int = 65_536) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` has a token (0.0: it has one now); takes nothing."""
        tokens, stamp = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - stamp) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, key: str, now: float) -> float:
        """Take one token for ``key``.

        :returns: 0.0 when allowed, else the seconds to wait until a token is available.
        """
        tokens, stamp = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - stamp) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait
