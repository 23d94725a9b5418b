"""Waiting for a condition in tests that drive real processes: one helper, used everywhere.

The timeout bounds a hang; it is never a statement about speed, so it should be generous.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ("wait_until",)


def wait_until(
    check: Callable[[], bool], timeout: float = 30.0, what: str = "condition", every: float = 0.1
) -> float:
    """Poll ``check`` every ``every`` seconds until it holds; the seconds it took.

    :raises AssertionError: ``what`` did not hold within ``timeout`` seconds.
    """
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(every)
    return time.monotonic() - started
