"""The origin's rule for one attempt: exactly one grant, to the first valid claim.

Sans-I/O: claims and the clock go in, decisions come out. A claim is valid when it is
for this task and attempt, from a node the attempt was offered to, and arrives while the
attempt is open. With ``window_ms = 0`` the first valid claim is granted at once; with a
window, the claims that arrive within it after the first are ranked by predicted time to
first token, ties broken by node id, and the best is granted when the window closes.
Every other claim — earlier losers, later arrivals — is told the attempt is closed.
An attempt whose first candidates stay silent may be offered to more
(:meth:`AttemptArbiter.widen`): the earlier ones' late claims stay valid, and there is
still one grant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgecoder.tasks.messages import Claim

__all__ = ("CLOSED", "GRANTED", "PENDING", "AttemptArbiter")

GRANTED = "granted"
CLOSED = "closed"
PENDING = "pending"


@dataclass(slots=True)
class AttemptArbiter:
    """Claims for one (task, attempt) and the one grant made for it."""

    task_id: str
    attempt: int
    candidates: frozenset[str]
    window_ms: int = 0
    claims: int = 0
    """Valid claims received, granted or not."""
    granted: Claim | None = None
    closed: bool = False
    _pending: list[Claim] = field(default_factory=list)
    _first_ms: int | None = None

    def claim(self, claim: Claim, now_ms: int) -> str:
        """Decide on one claim: ``granted``, ``closed``, or ``pending`` (window open)."""
        if (
            self.closed
            or self.granted is not None
            or claim.task_id != self.task_id
            or claim.attempt != self.attempt
            or claim.worker not in self.candidates
        ):
            return CLOSED
        if any(c.worker == claim.worker for c in self._pending):
            return PENDING
        self.claims += 1
        if self.window_ms <= 0:
            self.granted = claim
            return GRANTED
        if self._first_ms is None:
            self._first_ms = now_ms
        self._pending.append(claim)
        return PENDING

    def widen(self, node_ids: frozenset[str]) -> None:
        """Offer the open attempt to more nodes: their claims become valid too."""
        if not self.closed and self.granted is None:
            self.candidates = self.candidates | node_ids

    def window_closes_ms(self) -> int | None:
        """When the grant must be decided (None until a claim is pending)."""
        return None if self._first_ms is None else self._first_ms + self.window_ms

    def decide(self) -> Claim | None:
        """Close the window: grant the best pending claim (lowest TTFT, then node id)."""
        if self.granted is None and self._pending:
            self.granted = min(self._pending, key=lambda c: (c.ttft_ms, c.worker))
        self._pending.clear()
        return self.granted

    def close(self) -> None:
        """No more claims for this attempt (it ended, failed or timed out)."""
        self.closed = True
        self._pending.clear()
