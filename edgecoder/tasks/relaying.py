"""The origin's view of a granted attempt's stream: what each event means, and the lease.

Sans-I/O: :class:`RunWatch` takes the worker's decoded events and the time, and says
what each one means for the attempt (:class:`Verdict`); :meth:`RunWatch.expires_ms` is
when the attempt fails if the worker sends nothing more (a token or a heartbeat renews
the lease). Decryption and the network stay in the driver.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edgecoder.tasks.errors import RETRYABLE

__all__ = ("RunWatch", "Verdict")


class Verdict(enum.Enum):
    """What one event from the worker means."""

    ALIVE = "alive"
    """A heartbeat: the worker is still on it (the lease is renewed)."""
    ADMITTED = "admitted"
    """The worker recorded the run and its backend admitted it."""
    OUTPUT = "output"
    """A piece of the output."""
    FINISHED = "finished"
    """The output is complete."""
    RETRY = "retry"
    """The attempt failed in a way another worker may not: offer the task again."""
    FATAL = "fatal"
    """The request would fail on any worker: the task fails."""
    UNKNOWN = "unknown"
    """An event kind this node does not know (a newer worker): ignored, the lease renewed."""


_KINDS = {"hb": Verdict.ALIVE, "admit": Verdict.ADMITTED, "text": Verdict.OUTPUT,
          "end": Verdict.FINISHED}  # fmt: skip


@dataclass(slots=True)
class RunWatch:
    """One granted attempt's stream, as the origin sees it."""

    lease_ms: int
    last_word_ms: float
    """When the worker last sent anything (the grant's sending, at first)."""
    tokens: int = 0
    """Output events received (one token each)."""
    admitted: bool = False

    def on_event(self, kind: str, code: str | None, now_ms: float) -> Verdict:
        """An event of ``kind`` (``code`` for an error event) arrived at ``now_ms``."""
        self.last_word_ms = now_ms
        if kind == "error":
            return Verdict.RETRY if code in RETRYABLE else Verdict.FATAL
        verdict = _KINDS.get(kind, Verdict.UNKNOWN)
        if verdict is Verdict.ADMITTED:
            self.admitted = True
        elif verdict is Verdict.OUTPUT:
            self.tokens += 1
        return verdict

    def expires_ms(self) -> float:
        """When the lease runs out unless the worker sends something first."""
        return self.last_word_ms + self.lease_ms

    def expired(self, now_ms: float) -> bool:
        """Whether the worker has been silent past its lease."""
        return now_ms >= self.expires_ms()
