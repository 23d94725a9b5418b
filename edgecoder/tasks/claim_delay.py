"""How long a candidate waits before it claims: the whole computation, in one function.

Three terms, each for one reason:

- the **fitness curve** ``max_delay * extra / (extra + budget)`` of the time to first token
  this node adds beyond what its advert already told the origin (its queue, load, owner, a
  cold model): a node that will answer well within the budget claims almost at once, one
  far over it waits nearly the maximum, and the delay saturates instead of growing
  without bound;
- the **rank stagger**: the origin ranks its candidates by their adverts, and rank ``r``
  waits ``r`` staggers, each at least a claim's round trip — the time it takes the origin
  to hear a better-ranked claim and the close notice to come back — so equally fit nodes
  do not all claim;
- the **jitter**, drawn by the caller in ``[0, jitter_ms]``, which separates the nodes the
  first two terms leave equal (ranks from different rounds or origins). The best-ranked
  candidate draws none: there is nobody ahead of it to separate from within its round,
  and every millisecond it waits is added to the client's time to first token.

A candidate alone in its round waits for no one at all: every term is there to let a
fitter member of the same round claim first (an office of two or three boxes offers each
task to one peer, and there the delay was pure added time to first token).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecoder.config import TasksConfig

__all__ = ("ClaimTiming", "claim_delay_ms")


@dataclass(frozen=True, slots=True)
class ClaimTiming:
    """The configuration the delay depends on (``[tasks]``)."""

    budget_ms: int = 2000
    """``ttft_budget_ms``: the extra time to first token at which the curve is half way."""
    max_delay_ms: int = 200
    """``claim_delay_max_ms``: what the curve tends to."""
    stagger_ms: int = 50
    """``claim_stagger_ms``: the least wait per rank."""
    jitter_ms: int = 10
    """``claim_jitter_ms``: the width of the jitter the caller draws."""

    @classmethod
    def of(cls, tasks: TasksConfig) -> ClaimTiming:
        """The timing a node's ``[tasks]`` configuration sets."""
        return cls(tasks.ttft_budget_ms, tasks.claim_delay_max_ms, tasks.claim_stagger_ms,
                   tasks.claim_jitter_ms)  # fmt: skip


def claim_delay_ms(
    timing: ClaimTiming,
    *,
    extra_ttft_ms: int,
    rank: int,
    claim_rtt_ms: float,
    jitter: float,
    round_size: int = 2,
) -> float:
    """Milliseconds from hearing an offer to claiming it.

    ``jitter`` is a uniform draw in ``[0, 1)`` (the caller owns the random source, so a
    simulator can seed it); it is scaled to ``timing.jitter_ms`` and ignored at rank 0.
    A candidate alone in its round (``round_size`` 1) claims at once: the delay only
    lets fitter candidates of the same round go first, and there are none.
    """
    if round_size <= 1:
        return 0.0
    extra = max(0, extra_ttft_ms)
    curve = timing.max_delay_ms * extra / (extra + max(1, timing.budget_ms))
    stagger = rank * max(timing.stagger_ms, claim_rtt_ms)
    spread = jitter * timing.jitter_ms if rank > 0 else 0.0
    return curve + stagger + spread
