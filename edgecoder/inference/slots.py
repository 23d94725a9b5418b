"""Concurrency slots with a bounded wait queue in front of them.

A backend runs at most ``slots`` generations at once; up to ``max_queue`` more wait in
arrival order; beyond that a request is refused at once with ``OverloadedError`` (a 503
the client can retry) instead of waiting without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from edgecoder.errors import OverloadedError

__all__ = ("SlotPool",)


class SlotPool:
    """``slots`` concurrent holders, ``max_queue`` waiters."""

    def __init__(self, slots: int, max_queue: int) -> None:
        if slots < 1:
            raise ValueError("a slot pool needs at least one slot")
        self.slots = slots
        self.max_queue = max_queue
        self._semaphore = asyncio.Semaphore(slots)
        self._busy = 0
        self._waiting = 0

    @property
    def busy(self) -> int:
        """Slots in use now."""
        return self._busy

    @property
    def waiting(self) -> int:
        """Requests queued for a slot."""
        return self._waiting

    def admit(self) -> None:
        """Refuse at once when a new request could not even queue.

        :raises OverloadedError: every slot is busy and the queue is full.
        """
        if self._semaphore.locked() and self._waiting >= self.max_queue:
            raise OverloadedError(
                f"all {self.slots} slot(s) busy and {self._waiting} request(s) queued; retry later"
            )

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body of the ``async with``, queueing for it if needed.

        :raises OverloadedError: every slot is busy and the queue is full.
        """
        self.admit()
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            self._semaphore.release()
