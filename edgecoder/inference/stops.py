"""Stop strings over a token stream: emit text as early as possible, never past a stop.

Text that could still turn out to be the start of a stop string is held back until the
next piece settles it, so a client never sees half of a stop string.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ("StopScanner",)


class StopScanner:
    """Feed decoded text pieces; get back what is safe to emit, and whether to stop."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False
        self.matched = ""
        """The stop string found (empty until one is)."""

    def feed(self, text: str) -> str:
        """Add ``text``; return the part that can be emitted now.

        After a stop string is found, :attr:`stopped` is true, the stop string and
        everything after it are dropped, and further input is ignored.
        """
        if self.stopped:
            return ""
        buffer = self._held + text
        found = [(i, s) for s in self._stops if (i := buffer.find(s)) >= 0]
        cut = min(found)[0] if found else -1
        if cut >= 0:
            self.matched = min(found)[1]
            self.stopped = True
            self._held = ""
            return buffer[:cut]
        keep = self._partial_suffix(buffer)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        """The held-back text, at the end of the stream."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _partial_suffix(self, buffer: str) -> int:
        """Length of the longest end of ``buffer`` that begins some stop string."""
        best = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buffer)), best, -1):
                if buffer.endswith(stop[:size]):
                    best = size
                    break
        return best
