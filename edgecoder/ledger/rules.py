"""What a valid chain is, and the balances it implies (``docs/ledger.md`` §2).

:class:`ChainState` is one chain folded entry by entry: its head, its available and held
credits, its open holds and its cumulative totals with each counterparty. ``check`` says
whether the next entry may follow (raising :class:`~edgecoder.errors.LedgerError` with
the rule it breaks), ``apply`` checks and takes it. Signatures and links are the
verifier's (:func:`~edgecoder.ledger.entries.verify_segment`); this module is the
accounting. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from edgecoder.errors import LedgerError
from edgecoder.ledger.entries import ESCROW, GENESIS_HASH, TREASURY, Entry, SignedEntry
from edgecoder.security.identity import is_node_id

__all__ = ("EFFECT", "ChainState", "VouchLookup")

EFFECT = {"allowance": 1, "earn": 1, "release": 1, "spend": -1, "hold": -1, "settle": -1,
          "adjust": 1}  # fmt: skip
"""The sign with which each kind's amount moves the available balance (``adjust`` carries
its own sign)."""

VouchLookup = Callable[[str, str], int | None]
"""``(vouch hash, node id)`` → the amount a valid vouch grants that node, or None."""


def _no_vouches(ref: str, node: str) -> int | None:
    return None


@dataclass(slots=True)
class ChainState:
    """One author's chain, folded."""

    node: str
    vouches: VouchLookup = _no_vouches
    """Resolves the vouch an ``allowance`` names (None: no valid vouch)."""
    seq: int = 0
    head: str = GENESIS_HASH
    available: int = 0
    """Credits that can be spent or held now (mc): the sum of every entry's effect."""
    held: int = 0
    """Credits in open holds (mc)."""
    holds: dict[str, int] = field(default_factory=dict)
    """Open holds: task id → amount."""
    held_ever: set[str] = field(default_factory=set)
    """Every task id ever held (a task is held once, however many attempts it takes)."""
    totals: dict[tuple[str, str], int] = field(default_factory=dict)
    """(``earn`` | ``spend``, party) → the cumulative amount so far."""
    allowance: int = 0
    """What this chain was granted (0: no allowance yet)."""

    @property
    def balance(self) -> int:
        """Available plus held."""
        return self.available + self.held

    def total(self, kind: str, party: str) -> int:
        """The cumulative ``earn`` from, or ``spend`` to, ``party`` so far."""
        return self.totals.get((kind, party), 0)

    def check(self, entry: Entry) -> None:
        """Whether ``entry`` may be the next entry of this chain.

        :raises LedgerError: it may not; the code names the rule.
        """
        if entry.node != self.node:
            raise LedgerError("wrong_author", f"an entry of {entry.node} in {self.node}'s chain")
        if entry.seq != self.seq + 1 or entry.prev != self.head:
            raise LedgerError(
                "bad_link", f"entry {entry.seq} does not follow {self.seq} ({self.head[:12]})"
            )
        kind, amount, party = entry.kind, entry.amount, entry.party
        if kind == "adjust":
            if amount == 0:
                raise LedgerError("bad_amount", "an adjustment moves a non-zero amount")
        elif amount <= 0:
            raise LedgerError("bad_amount", f"a {kind} moves a positive amount")
        if kind in ("earn", "spend"):
            if not is_node_id(party) or party == self.node:
                raise LedgerError("bad_party", f"a {kind} is with another node")
            if entry.total != self.total(kind, party) + amount:
                raise LedgerError(
                    "bad_total",
                    f"the {kind} total with {party} was {self.total(kind, party)}: "
                    f"{entry.total} is not it plus {amount}",
                )
        elif entry.total != 0:
            raise LedgerError("bad_total", f"a {kind} carries no total")
        if kind == "allowance":
            if party != TREASURY:
                raise LedgerError("bad_party", "an allowance comes from the treasury")
            if self.allowance:
                raise LedgerError("second_allowance", "a node is granted one allowance")
            if self.vouches(entry.ref, self.node) != amount:
                raise LedgerError("no_vouch", "no valid vouch grants this allowance")
        elif kind == "settle" and party != TREASURY:
            raise LedgerError("bad_party", "a settlement burns to the treasury")
        elif kind == "hold":
            if party != ESCROW:
                raise LedgerError("bad_party", "a hold is with escrow")
            if entry.ref in self.held_ever:
                raise LedgerError("held_twice", f"task {entry.ref} was already held")
        elif kind == "release":
            if party != ESCROW:
                raise LedgerError("bad_party", "a release is from escrow")
            if self.holds.get(entry.ref) != amount:
                raise LedgerError("bad_release", f"no open hold of {amount} for {entry.ref}")
        if self.available + EFFECT[kind] * amount < 0:
            raise LedgerError(
                "overdraft", f"{kind} of {amount} exceeds the {self.available} available"
            )

    def apply(self, entry: SignedEntry) -> Callable[[], None]:
        """Check ``entry`` and take it as the chain's next.

        :returns: what undoes it (for a writer whose write then failed), valid until the
            next entry is applied.
        :raises LedgerError: it breaks a rule (the state is unchanged).
        """
        body = entry.entry
        self.check(body)
        before = (self.seq, self.head, self.available, self.held, self.allowance)
        key = (body.kind, body.party)
        old_total = self.totals.get(key)
        self.seq, self.head = body.seq, entry.hash_hex
        self.available += EFFECT[body.kind] * body.amount
        if body.kind in ("earn", "spend"):
            self.totals[key] = body.total
        elif body.kind == "allowance":
            self.allowance = body.amount
        elif body.kind == "hold":
            self.holds[body.ref] = body.amount
            self.held_ever.add(body.ref)
            self.held += body.amount
        elif body.kind == "release":
            del self.holds[body.ref]
            self.held -= body.amount

        def undo() -> None:
            self.seq, self.head, self.available, self.held, self.allowance = before
            if body.kind in ("earn", "spend"):
                if old_total is None:
                    del self.totals[key]
                else:
                    self.totals[key] = old_total
            elif body.kind == "hold":
                del self.holds[body.ref]
                self.held_ever.discard(body.ref)
            elif body.kind == "release":
                self.holds[body.ref] = body.amount

        return undo

    @classmethod
    def fold(
        cls, node: str, entries: Iterable[SignedEntry], vouches: VouchLookup = _no_vouches
    ) -> ChainState:
        """The state after every entry, from the chain's start.

        :raises LedgerError: an entry breaks a rule.
        """
        state = cls(node, vouches)
        for entry in entries:
            state.apply(entry)
        return state
