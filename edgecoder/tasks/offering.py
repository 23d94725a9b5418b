"""The origin's half of the claim-delay protocol for one attempt, as a state machine.

Sans-I/O: :class:`OfferAttempt` takes events (the candidates' answers to offers, their
claims, its own timer) and the time, and returns actions (:class:`SendOffer`,
:class:`SendClose`, :class:`Wake`, :class:`Granted`, :class:`NoClaim`). The origin's
asyncio driver (:class:`~edgecoder.tasks.origin.Origin`) and the claim simulator execute
them.

An attempt is offered in rounds, each to the next ``max_candidates`` of the ranking
(rank ``r`` in the round delays its claim by ``r`` staggers). A round ends when its wait
passes (:class:`ClaimWait`) or every candidate offered so far has declined; after a pass
over every candidate the next starts after a backoff. The earlier rounds' claims stay
valid — one :class:`~edgecoder.tasks.arbiter.AttemptArbiter`, one grant. When the attempt
is granted (or gives up), the candidates still weighing it are told it is closed, so
they stay silent. It gives up when nobody can run the task, or nobody claimed it within
its patience.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from edgecoder.tasks.arbiter import CLOSED, GRANTED, PENDING, AttemptArbiter
from edgecoder.tasks.fitness import Fit
from edgecoder.tasks.messages import Claim, Notice, Offer

__all__ = (
    "BACKOFF_MS",
    "ClaimWait",
    "Granted",
    "NoClaim",
    "OfferAction",
    "OfferAttempt",
    "SendClose",
    "SendOffer",
    "Wake",
)

BACKOFF_MS = (250, 500, 1000, 2000)
"""Pauses after each pass over every candidate without a claim."""
CONSIDERING = "considering"


class ClaimWait:
    """How long a round of offers waits for a claim: ``floor_ms`` while claims come
    quickly, longer when this node or its peers run behind (TCP's retransmission timer:
    smoothed first-claim time plus four deviations, at most 8 times the floor)."""

    def __init__(self, floor_ms: int) -> None:
        self.floor_ms = floor_ms
        self._mean: float | None = None
        self._dev = 0.0

    def observe(self, ms: float) -> None:
        """A round's first claim arrived ``ms`` after its offer was sent."""
        if self._mean is None:
            self._mean, self._dev = ms, ms / 2
            return
        self._dev += (abs(ms - self._mean) - self._dev) / 4
        self._mean += (ms - self._mean) / 8

    def ms(self) -> float:
        """The wait for the next round."""
        if self._mean is None:
            return float(self.floor_ms)
        return min(max(self.floor_ms, self._mean + 4 * self._dev), 8 * self.floor_ms)


@dataclass(frozen=True, slots=True)
class SendOffer:
    """Offer the attempt to ``node_id``; report its answer with :meth:`OfferAttempt.on_answer`."""

    node_id: str
    offer: Offer


@dataclass(frozen=True, slots=True)
class SendClose:
    """Tell ``node_id`` the attempt is taken (advisory: a late claim is told ``closed``)."""

    node_id: str
    notice: Notice


@dataclass(frozen=True, slots=True)
class Wake:
    """Call :meth:`OfferAttempt.on_timer` at ``at_ms`` (replacing any earlier wake)."""

    at_ms: float


@dataclass(frozen=True, slots=True)
class Granted:
    """The attempt is granted to ``claim.worker``."""

    claim: Claim


@dataclass(frozen=True, slots=True)
class NoClaim:
    """The attempt gives up: ``no_candidates`` (nobody can run it) or ``no_claim``."""

    code: str
    message: str


OfferAction = SendOffer | SendClose | Wake | Granted | NoClaim


@dataclass(slots=True)
class OfferAttempt:
    """Offers, claims and the one grant of one (task, attempt)."""

    offer: Offer
    """The offer as sent (``rank`` is set per recipient)."""
    candidates: Callable[[], list[Fit]]
    """The fittest peers for the attempt now, best first (failed workers excluded)."""
    max_candidates: int
    patience_ms: float
    """How long to wait for any claim before giving up."""
    wait: ClaimWait
    grant_window_ms: int = 0
    failed_before: int = 0
    """Workers excluded after failing earlier attempts (named when nobody is left)."""
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("offers", "declined", "rounds", "claims", "late_claims"), 0))  # fmt: skip
    arbiter: AttemptArbiter = field(init=False)
    prices: dict[str, int] = field(default_factory=dict)
    """Each candidate's advertised price multiplier, as offered to."""
    claimers: set[str] = field(default_factory=set)
    """Nodes that claimed (their answer told them how it went)."""
    answers: dict[str, str | None] = field(default_factory=dict)
    """Each candidate's answer to its offer (None while it is in flight)."""
    granted: Claim | None = None
    done: bool = False
    _sent_ms: dict[str, float] = field(default_factory=dict)
    _asked: set[str] = field(default_factory=set)
    """Candidates offered to in this pass over the ranking."""
    _passes: int = 0
    _give_up_ms: float = 0.0
    _round_ends_ms: float | None = None
    _backoff_ends_ms: float | None = None
    _window_ends_ms: float | None = None

    def __post_init__(self) -> None:
        self.arbiter = AttemptArbiter(
            self.offer.task_id, self.offer.attempt, frozenset(), self.grant_window_ms
        )

    # -- events ---------------------------------------------------------------------------

    def start(self, now_ms: float) -> list[OfferAction]:
        """Begin: the first round of offers."""
        self._give_up_ms = now_ms + self.patience_ms
        return self._next_round(now_ms)

    def on_answer(self, node_id: str, answer: str, now_ms: float) -> list[OfferAction]:
        """A candidate's answer to its offer: ``considering``, or why it will not claim
        (including a transport failure's code)."""
        if node_id not in self.answers or self.answers[node_id] is not None:
            return []
        self.answers[node_id] = answer
        if answer != CONSIDERING:
            self.stats["declined"] += 1
        if self.done or self._round_ends_ms is None or not self._all_declined():
            return []
        return self._next_round(now_ms)  # every candidate declined: do not wait out the round

    def on_claim(self, claim: Claim, now_ms: float) -> tuple[str, list[OfferAction]]:
        """A claim: the decision (``granted``, ``pending``, ``closed``) and what follows."""
        self.stats["claims"] += 1
        if self.done:
            self.stats["late_claims"] += 1
            return CLOSED, []
        self.claimers.add(claim.worker)
        decision = self.arbiter.claim(claim, int(now_ms))
        if decision == GRANTED:
            return GRANTED, self._grant(claim, now_ms)
        if decision == PENDING and self._window_ends_ms is None:
            self._window_ends_ms = now_ms + self.arbiter.window_ms
            return PENDING, [self._wake()]
        return decision, []

    def on_timer(self, now_ms: float) -> list[OfferAction]:
        """The wake asked for has come (or any time later)."""
        if self.done:
            return []
        if self._window_ends_ms is not None and now_ms >= self._window_ends_ms:
            self._window_ends_ms = None
            chosen = self.arbiter.decide()
            if chosen is not None:
                return self._grant(chosen, now_ms)
        if now_ms >= self._give_up_ms:
            return self._give_up()
        if self._backoff_ends_ms is not None and now_ms >= self._backoff_ends_ms:
            self._backoff_ends_ms = None
            return self._next_round(now_ms)
        if self._round_ends_ms is not None and now_ms >= self._round_ends_ms:
            return self._next_round(now_ms)
        return [self._wake()]

    def cancel(self) -> list[OfferAction]:
        """The task went away while offered: close the attempt, tell the candidates."""
        if self.done:
            return []
        return self._finish(None)

    # -- rounds ---------------------------------------------------------------------------

    def _next_round(self, now_ms: float) -> list[OfferAction]:
        self._round_ends_ms = None
        if now_ms >= self._give_up_ms:
            return self._give_up()
        fits = self.candidates()
        if not fits:
            failed = f" ({self.failed_before} failed already)" if self.failed_before else ""
            return self._finish(NoClaim(
                "no_candidates",
                f"no peer can run model '{self.offer.model}' for this request now{failed}",
            ))  # fmt: skip
        batch = [fit for fit in fits if fit.node_id not in self._asked][: self.max_candidates]
        if not batch:  # everyone was asked: give them a moment, then ask again
            self._asked.clear()
            self._passes += 1
            pause = BACKOFF_MS[min(self._passes, len(BACKOFF_MS)) - 1]
            self._backoff_ends_ms = now_ms + pause
            return [self._wake()]
        self._asked.update(fit.node_id for fit in batch)
        self.stats["rounds"] += 1
        self.stats["offers"] += len(batch)
        self.arbiter.widen(frozenset(fit.node_id for fit in batch))
        actions: list[OfferAction] = []
        for rank, fit in enumerate(batch):
            self.prices[fit.node_id] = fit.price_pct
            self.answers[fit.node_id] = None
            self._sent_ms[fit.node_id] = now_ms
            offer = replace(self.offer, rank=rank, round_size=len(batch))
            actions.append(SendOffer(fit.node_id, offer))
        self._round_ends_ms = now_ms + self.wait.ms()
        actions.append(self._wake())
        return actions

    def _all_declined(self) -> bool:
        return all(a is not None and a != CONSIDERING for a in self.answers.values())

    def _wake(self) -> Wake:
        due = [self._give_up_ms]
        for at in (self._round_ends_ms, self._backoff_ends_ms, self._window_ends_ms):
            if at is not None:
                due.append(at)
        return Wake(min(due))

    def _grant(self, claim: Claim, now_ms: float) -> list[OfferAction]:
        sent = self._sent_ms.get(claim.worker)
        if sent is not None:
            self.wait.observe(now_ms - sent)
        self.granted = claim
        return [Granted(claim), *self._finish(None)]

    def _give_up(self) -> list[OfferAction]:
        patience = self.patience_ms / 1000
        return self._finish(
            NoClaim("no_claim", f"no peer took the task within {patience:.0f} s: the mesh is busy")
        )

    def _finish(self, outcome: NoClaim | None) -> list[OfferAction]:
        self.done = True
        self.arbiter.close()
        self._round_ends_ms = self._backoff_ends_ms = self._window_ends_ms = None
        worker = self.granted.worker if self.granted else ""
        notice = Notice(self.offer.task_id, self.offer.attempt)
        actions: list[OfferAction] = [
            SendClose(node_id, notice)
            for node_id, answer in self.answers.items()
            if node_id != worker
            and node_id not in self.claimers
            and (answer is None or answer == CONSIDERING)
        ]
        if outcome is not None:
            actions.insert(0, outcome)
        return actions
