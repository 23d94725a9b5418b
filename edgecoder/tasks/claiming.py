"""The worker's half of the claim-delay protocol as a state machine: events in, actions out.

Sans-I/O, like :mod:`edgecoder.mesh.membership`: no sockets, no timers, no database.
Each method takes one event (an offer, a close notice, a timer firing, a claim's answer,
a grant, the end of a run, a cancel notice) and the time, and returns what the driver
must do (:class:`SetTimer`, :class:`CancelTimer`, :class:`SendClaim`, :class:`StopRun`).
:class:`~edgecoder.tasks.worker.Worker` executes the actions over the network and the
backend; the claim simulator (``tests/benchmarks/bench_claim_sim.py``) executes them
under a simulated clock.

The rules: an offer this node can serve starts a claim timer
(:func:`~edgecoder.tasks.claim_delay.claim_delay_ms`); a close notice before it fires
stops it; when it fires the node claims, unless it already holds all the claims it may
(one running and one waiting per slot). A grant is accepted only for an attempt this
node claimed, from that attempt's origin, before its deadline, and only once. A claim
whose grant never comes is forgotten after a while.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from edgecoder.tasks.claim_delay import ClaimTiming, claim_delay_ms
from edgecoder.tasks.messages import Claim, Grant, Offer

__all__ = (
    "CLAIMS_PER_SLOT",
    "CancelTimer",
    "ClaimBook",
    "Key",
    "SendClaim",
    "SetTimer",
    "Standing",
    "StopRun",
    "WorkerAction",
)

Key = tuple[str, int]
"""(task id, attempt)."""

CLAIMS_PER_SLOT = 2
"""Claims held per slot: one running and one waiting. More would only queue here while
other candidates are free."""
MAX_PENDING = 4096
"""Claim timers beyond which offers are answered ``busy``."""
TASK_MS_START = 2000
"""The assumed length of a run before this node has finished one."""


@dataclass(frozen=True, slots=True)
class Standing:
    """How this node stands for one offer, from its own advert and queue: why it cannot
    serve it (``refusal``), or the time to first token it predicts and how much of that
    the origin could not know from its advert (``extra_ttft_ms``)."""

    refusal: str | None = None
    ttft_ms: int = 0
    extra_ttft_ms: int = 0


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Call :meth:`ClaimBook.on_timer` with ``token`` at ``at_ms`` (replacing its earlier timer)."""

    token: tuple[str, Key]
    at_ms: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Forget the timer ``token``."""

    token: tuple[str, Key]


@dataclass(frozen=True, slots=True)
class SendClaim:
    """Send ``claim`` to ``origin``; report its answer with :meth:`ClaimBook.on_claim_answer`."""

    origin: str
    claim: Claim


@dataclass(frozen=True, slots=True)
class StopRun:
    """Stop the running attempt ``key`` (its origin's client went away)."""

    key: Key


WorkerAction = SetTimer | CancelTimer | SendClaim | StopRun
_CLAIM = "claim"
_FORGET = "forget"


@dataclass(slots=True)
class _Waiting:
    offer: Offer
    ttft_ms: int


@dataclass(slots=True)
class ClaimBook:
    """A worker's offers, claims and runs."""

    node_id: str
    slots: int
    """Peer tasks this node runs at once (0: it never works for peers)."""
    timing: ClaimTiming
    forget_after_ms: int
    """How long a claim waits for its grant before it is forgotten."""
    assess: Callable[[Offer, int], Standing]
    """This node's standing for an offer, given how many peer runs are queued ahead."""
    rng: random.Random = field(default_factory=random.Random)
    task_ms: int = TASK_MS_START
    """Smoothed length of a finished run."""
    claim_rtt_ms: float = 0.0
    """Smoothed time from sending a claim to its answer."""
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("offers", "timers", "claims", "grants", "runs", "silent", "busy", "claim_delay_ms"),
        0))  # fmt: skip
    """Counters; ``claim_delay_ms`` is the sum of the delays of the ``timers`` started."""
    _waiting: dict[Key, _Waiting] = field(default_factory=dict)
    """Offers whose claim timer runs."""
    _claimed: dict[Key, Offer] = field(default_factory=dict)
    """Attempts claimed and not yet ended (granted, pending, or the answer lost)."""
    _running: set[Key] = field(default_factory=set)

    # -- what the driver may ask ----------------------------------------------------------

    @property
    def running(self) -> int:
        """Peer attempts running here now."""
        return len(self._running)

    @property
    def pending(self) -> int:
        """Claim timers running now."""
        return len(self._waiting)

    def is_running(self, key: Key) -> bool:
        """Whether the attempt runs here."""
        return key in self._running

    def queued_ahead(self) -> int:
        """Peer runs a newly granted one would wait behind (0 with a free slot)."""
        return max(0, len(self._running) - self.slots + 1)

    def full(self) -> bool:
        """Whether this node holds all the claims it may."""
        return len(self._claimed) >= self.slots * CLAIMS_PER_SLOT

    # -- events ---------------------------------------------------------------------------

    def on_offer(self, offer: Offer, now_ms: float, wall_ms: int) -> tuple[str, list[WorkerAction]]:
        """An offer: the answer (``considering``, or why not) and the claim timer to start."""
        self.stats["offers"] += 1
        key = (offer.task_id, offer.attempt)
        if self.slots <= 0:
            return "not_a_worker", []
        if key in self._waiting or key in self._claimed:
            return "considering", []
        if offer.deadline_ms <= wall_ms:
            return "expired", []
        if len(self._waiting) >= MAX_PENDING or self.full():
            self.stats["busy"] += 1
            return "busy", []
        standing = self.assess(offer, self.queued_ahead())
        if standing.refusal is not None:
            return standing.refusal, []
        delay = claim_delay_ms(
            self.timing,
            extra_ttft_ms=standing.extra_ttft_ms,
            rank=offer.rank,
            claim_rtt_ms=self.claim_rtt_ms,
            jitter=self.rng.random(),
            round_size=offer.round_size,
        )
        self.stats["timers"] += 1
        self.stats["claim_delay_ms"] += round(delay)
        self._waiting[key] = _Waiting(offer, standing.ttft_ms)
        return "considering", [SetTimer((_CLAIM, key), now_ms + delay)]

    def on_close(self, key: Key) -> tuple[bool, list[WorkerAction]]:
        """The attempt was granted elsewhere: stay silent. True if a claim timer was stopped."""
        if key not in self._running:
            self._claimed.pop(key, None)  # a pending claim that lost: its capacity is free
        if self._waiting.pop(key, None) is None:
            return False, []
        self.stats["silent"] += 1
        return True, [CancelTimer((_CLAIM, key))]

    def on_cancel(self, key: Key) -> tuple[bool, list[WorkerAction]]:
        """Stop working on an attempt. True if it was running or about to be claimed."""
        if key in self._running:
            return True, [StopRun(key)]
        return self.on_close(key)

    def on_timer(self, token: tuple[str, Key], now_ms: float) -> list[WorkerAction]:
        """A timer this machine asked for fired."""
        what, key = token
        if what == _FORGET:
            if key not in self._running:
                self._claimed.pop(key, None)
            return []
        waiting = self._waiting.pop(key, None)
        if waiting is None:
            return []
        if self.full():
            self.stats["silent"] += 1  # work was granted here meanwhile: let another take it
            return []
        # Claimed before the claim leaves: the grant may overtake the claim's answer.
        self._claimed[key] = waiting.offer
        self.stats["claims"] += 1
        claim = Claim(key[0], key[1], self.node_id, waiting.ttft_ms)
        return [SendClaim(waiting.offer.origin, claim)]

    def on_claim_answer(
        self, key: Key, answer: str, rtt_ms: float | None, now_ms: float
    ) -> list[WorkerAction]:
        """The origin's answer to a claim: ``granted``, ``pending``, ``closed``, or
        ``unknown`` (lost on the way back: it may have been granted). ``rtt_ms`` is the
        exchange's round trip when it completed."""
        if rtt_ms is not None:
            self.claim_rtt_ms += (rtt_ms - self.claim_rtt_ms) / 8
        if answer == "closed" and key not in self._running:
            self._claimed.pop(key, None)
            return []
        # The grant arrives as its own message, as late as a busy origin sends it.
        return [SetTimer((_FORGET, key), now_ms + self.forget_after_ms)]

    def grant_refusal(self, grant: Grant, sender: str, wall_ms: int) -> tuple[str, str] | None:
        """Why this node will not run ``grant`` (code, message), or None to run it."""
        key = (grant.task_id, grant.attempt)
        offer = self._claimed.get(key)
        if offer is None or offer.origin != sender:
            return "not_claimed", "this node has no open claim for that attempt"
        if grant.deadline_ms <= wall_ms:
            return "expired", "the task's deadline has passed"
        if key in self._running:
            return "already_running", "this attempt is already running here"
        return None

    def claimed_offer(self, key: Key) -> Offer | None:
        """The offer this node claimed for ``key``."""
        return self._claimed.get(key)

    def on_run_started(self, key: Key) -> None:
        """The driver accepted the grant and starts the run."""
        self._running.add(key)
        self.stats["grants"] += 1
        self.stats["runs"] += 1

    def on_run_ended(self, key: Key, done: bool, elapsed_ms: int) -> None:
        """The run ended (``done``: it finished its output)."""
        self._running.discard(key)
        self._claimed.pop(key, None)
        if done:
            self.task_ms = (self.task_ms * 3 + elapsed_ms) // 4

    def timers(self) -> list[tuple[str, Key]]:
        """The claim timers running (the driver cancels them on stop)."""
        return [(_CLAIM, key) for key in self._waiting]
