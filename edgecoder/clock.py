"""Time, behind a small interface so the core can run under a simulated clock."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ("Clock", "SystemClock")


class Clock(Protocol):
    """Wall time for records and monotonic time for intervals."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch (wall clock)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...


class SystemClock:
    """The operating system's clocks."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch (wall clock)."""
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        return time.monotonic()
