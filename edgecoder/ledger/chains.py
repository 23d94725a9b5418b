"""The chains of peers this node follows: folded, verified, and checked for forks.

(``docs/ledger.md`` §6 and §7.) :class:`PeerChains` holds each peer's chain as far as this node
has it, folded into a :class:`~edgecoder.ledger.rules.ChainState`. A ledger head gossiped
by a peer says how far its chain goes: :meth:`PeerChains.wanted` is what to fetch.
A fetched segment is taken by :meth:`PeerChains.accept` only if it continues the held
chain, is signed by the author and keeps the chain rules; a validly signed entry that
differs from the one held at the same place is a fork (:class:`Fork`), whose two entries
are the proof. Pure: the driver does the fetching and the storing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from edgecoder.errors import LedgerError
from edgecoder.ledger.entries import SignedEntry, verify_segment
from edgecoder.ledger.rules import ChainState, VouchLookup

__all__ = ("Fork", "PeerChains", "Wanted")


@dataclass(frozen=True, slots=True)
class Wanted:
    """Fetch ``node``'s entries after ``after`` (the head gossiped is at ``seq``)."""

    node: str
    after: int
    seq: int


@dataclass(frozen=True, slots=True)
class Fork:
    """Two entries one author signed for the same place in its chain."""

    held: SignedEntry
    other: SignedEntry

    @property
    def node(self) -> str:
        """The author that forked."""
        return self.held.entry.node

    def evidence(self, public_key: bytes) -> dict[str, object]:
        """The proof anyone can check alone: both entries and the author's key."""
        return {"key": public_key.hex(), "first": self.held.as_json(),
                "second": self.other.as_json()}  # fmt: skip


class PeerChains:
    """Every peer chain this node holds."""

    def __init__(self, vouches: VouchLookup) -> None:
        self.vouches = vouches
        self.chains: dict[str, ChainState] = {}
        self._hashes: dict[str, list[str]] = {}
        """Per chain, every entry's hash in order (the fork check looks one up)."""

    def state(self, node: str) -> ChainState:
        """The chain held for ``node`` (empty when none)."""
        state = self.chains.get(node)
        if state is None:
            state = self.chains[node] = ChainState(node, self.vouches)
            self._hashes[node] = []
        return state

    def load(self, node: str, entries: Iterable[SignedEntry]) -> None:
        """Fold a stored chain (at start); it was verified when it was stored.

        :raises LedgerError: it breaks the rules now (it is then not held at all).
        """
        state = ChainState(node, self.vouches)
        hashes = []
        for entry in entries:
            state.apply(entry)
            hashes.append(entry.hash_hex)
        self.chains[node], self._hashes[node] = state, hashes

    def hash_at(self, node: str, seq: int) -> str | None:
        """The hash held at ``seq`` of ``node``'s chain, or None."""
        hashes = self._hashes.get(node, [])
        return hashes[seq - 1] if 0 < seq <= len(hashes) else None

    def wanted(self, heads: Mapping[str, tuple[int, str]]) -> list[Wanted]:
        """What to fetch for the gossiped heads (node → (seq, hash)): each chain that goes
        further than held, and each whose head differs from what is held at its place
        (the entry there, to see whether it is a fork)."""
        out = []
        for node, (seq, hash_hex) in sorted(heads.items()):
            held = self.state(node).seq
            if seq > held:
                out.append(Wanted(node, held, seq))
            elif seq > 0 and self.hash_at(node, seq) != hash_hex:
                out.append(Wanted(node, seq - 1, seq))
        return out

    def overlap(self, node: str, entries: Sequence[SignedEntry]) -> list[int]:
        """The places of ``entries`` that this node already holds for ``node``."""
        held = self.state(node).seq
        return [e.entry.seq for e in entries if e.entry.seq <= held]

    def accept(
        self,
        node: str,
        public_key: bytes,
        entries: Sequence[SignedEntry],
        held: Mapping[int, SignedEntry],
    ) -> tuple[list[SignedEntry], Fork | None]:
        """Take the fetched ``entries`` of ``node``'s chain that continue it.

        ``held`` has the entries held at the places the fetched ones overlap (read with
        :meth:`overlap`): a fork's proof needs the one held.

        :returns: the entries taken (to store, in order) and a fork, if one was found.
        :raises LedgerError: a segment that is not the author's, or breaks the rules
            (nothing of it is taken).
        """
        if not entries:
            return [], None
        if any(e.entry.node != node for e in entries):
            raise LedgerError("wrong_author", f"entries of another node in {node}'s chain")
        state = self.state(node)
        first = entries[0].entry.seq
        # Entries this node holds already: the same (nothing to do) or a fork.
        for entry in entries:
            seq = entry.entry.seq
            if seq > state.seq:
                break
            if self.hash_at(node, seq) != entry.hash_hex:
                if verify_segment(entry.entry.prev, [entry], public_key) != -1:
                    raise LedgerError("bad_signature", f"entry {seq} of {node} is not signed")
                return [], Fork(held[seq], entry)
        fresh = [e for e in entries if e.entry.seq > state.seq]
        if not fresh:
            return [], None
        if fresh[0].entry.seq != state.seq + 1 or first > state.seq + 1:
            raise LedgerError("bad_link", f"{node}'s entries do not continue at {state.seq + 1}")
        bad = verify_segment(state.head, fresh, public_key)
        if bad >= 0:
            raise LedgerError("bad_chain", f"{node}'s entry {fresh[bad].entry.seq} does not verify")
        undo = []
        try:
            for entry in fresh:
                undo.append(state.apply(entry))
        except LedgerError:
            for step in reversed(undo):
                step()
            raise
        self._hashes[node].extend(e.hash_hex for e in fresh)
        return fresh, None
