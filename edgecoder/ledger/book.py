"""This node's own chain: the one writer that appends to it, durably, and the escrow.

The :class:`Ledger` folds the chain held in SQLite into a
:class:`~edgecoder.ledger.rules.ChainState` at start (verifying every link and
signature), and from then on is the only code that appends to it: each append is checked
by the chain rules, written in one transaction, and only then taken into the state — so
what the state says was written, and a crash loses nothing acknowledged. Appends are
serialised (a chain has one writer and each entry names the one before).

Escrow: :meth:`Ledger.reserve` counts a task's largest price against the available
credits at once, in memory (two requests can never both count the same credits);
:meth:`Ledger.hold` makes it a durable ``hold`` entry before the task's grant;
:meth:`Ledger.pay` releases it and spends the price stated by the receipt;
:meth:`Ledger.release` gives it back when the task fails. With
:class:`~edgecoder.ledger.accounts.KeyAccounts`, :meth:`Ledger.reserve_for` also counts
the task against the budget of the API key that asked for it, and the payment charges
that key in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edgecoder.clock import Clock
from edgecoder.errors import InsufficientCreditsError, LedgerError
from edgecoder.events import BalanceChanged, EventHub
from edgecoder.ledger.accounts import Charge, KeyAccounts
from edgecoder.ledger.entries import ESCROW, SignedEntry, new_entry, verify_segment
from edgecoder.ledger.entries import GENESIS_HASH as _GENESIS
from edgecoder.ledger.pricing import format_mc
from edgecoder.ledger.rules import ChainState, VouchLookup
from edgecoder.security.identity import NodeIdentity
from edgecoder.storage import ledger_rows
from edgecoder.storage.database import Database, transaction

__all__ = ("Ledger", "Posting")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Posting:
    """One entry to append: what :meth:`Ledger.append` takes."""

    kind: str
    amount: int
    party: str
    ref: str
    total: int = 0


class Ledger:
    """The node's own chain and its escrow; :attr:`state` says only what is on disk."""

    def __init__(
        self,
        identity: NodeIdentity,
        database: Database,
        clock: Clock,
        events: EventHub,
        vouches: VouchLookup | None = None,
        accounts: KeyAccounts | None = None,
    ) -> None:
        """``accounts``: the API keys' budgets, when tasks are charged to the keys that
        asked for them."""
        self.identity = identity
        self.database = database
        self.clock = clock
        self.events = events
        self.state = ChainState(identity.node_id, vouches or (lambda ref, node: None))
        self.head: SignedEntry | None = None
        self._lock = asyncio.Lock()
        self._reserved: dict[str, int] = {}
        """Tasks reserved and not yet durably held: task id → amount."""
        self._payers: dict[str, asyncio.Lock] = {}
        self.accounts = accounts

    @property
    def node_id(self) -> str:
        """The chain's author."""
        return self.identity.node_id

    @property
    def available(self) -> int:
        """What can be spent or held now (mc): the chain's available less reservations."""
        return self.state.available - sum(self._reserved.values())

    @property
    def held(self) -> int:
        """What is held for running tasks, durably or not yet (mc)."""
        return self.state.held + sum(self._reserved.values())

    async def open(self) -> None:
        """Read and verify this node's chain.

        :raises LedgerError: the stored chain does not verify (it was altered).
        """
        node = self.node_id
        entries = await self.database.run(lambda c: ledger_rows.entries_of(c, node))
        bad = verify_segment(_GENESIS, entries, self.identity.public_key)
        if bad >= 0:
            raise LedgerError("bad_chain", f"this node's chain breaks at entry {bad + 1}")
        for entry in entries:
            self.state.apply(entry)
        self.head = entries[-1] if entries else None

    async def append(self, *postings: Posting) -> list[SignedEntry]:
        """Append ``postings`` in order, in one transaction.

        :raises LedgerError: one breaks the chain rules (nothing is appended).
        :raises StorageError: the write failed (nothing is appended).
        """
        async with self._lock:
            return await self._append(postings)

    async def _append(
        self, postings: tuple[Posting, ...], also: Charge | None = None
    ) -> list[SignedEntry]:
        # Made and checked one after the other on the state (each names the one before),
        # then taken back out: the state says only what is on disk, so nobody counts
        # credits whose entry might yet fail to be written.
        made: list[SignedEntry] = []
        undo: list[Callable[[], None]] = []
        after, now = self.head, self.clock.now_ms()
        try:
            for p in postings:
                entry = new_entry(self.identity, after, kind=p.kind, amount=p.amount,
                                  party=p.party, ref=p.ref, total=p.total, ts=now)  # fmt: skip
                undo.append(self.state.apply(entry))
                made.append(entry)
                after = entry
        finally:
            for step in reversed(undo):
                step()

        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                ledger_rows.append_entries(conn, made)
                if also is not None:
                    also(conn)

        cancelled = await _written(self.database.run(write))
        for entry in made:
            self.state.apply(entry)
        if made:
            self.head = made[-1]
            self.events.publish(BalanceChanged(self.state.balance, self.held, self.available))
        if cancelled:
            raise asyncio.CancelledError  # written and taken: now the caller may go
        return made

    # -- escrow ---------------------------------------------------------------------------

    def reserve(self, task_id: str, amount: int) -> None:
        """Count ``amount`` against the available credits for ``task_id`` (once per task).

        :raises InsufficientCreditsError: the available credits cannot cover it.
        """
        if task_id in self._reserved or task_id in self.state.held_ever:
            return
        if amount > self.available:
            raise InsufficientCreditsError(
                f"this task may cost up to {format_mc(amount)} credits and this node has "
                f"{format_mc(max(0, self.available))} available"
            )
        self._reserved[task_id] = amount

    async def reserve_for(self, account: str | None, task_id: str, amount: int) -> None:
        """:meth:`reserve`, first counting ``amount`` against the budget of the API key
        ``account`` (None: no key's task) when this ledger charges keys.

        :raises InsufficientCreditsError: the key's budget or this node's credits cannot
            cover it (nothing stays reserved).
        :raises StorageError: the key's budget could not be read.
        """
        keys = self.accounts if account is not None else None
        if keys is not None:
            assert account is not None
            await keys.reserve(account, task_id, amount)
        try:
            self.reserve(task_id, amount)
        except InsufficientCreditsError:
            if keys is not None:
                keys.release(task_id)
            raise

    async def hold(self, task_id: str) -> None:
        """Make ``task_id``'s reservation a durable ``hold`` entry (done once; again: no-op).

        :raises StorageError: it could not be written (the reservation stays).
        """
        async with self._lock:
            amount = self._reserved.get(task_id)
            if amount is None:
                return
            if amount > 0:
                await self._append((Posting("hold", amount, ESCROW, task_id),))
            del self._reserved[task_id]

    async def release(self, task_id: str) -> None:
        """Give back what ``task_id`` holds (its task failed or was cancelled)."""
        if self.accounts is not None:
            self.accounts.release(task_id)
        async with self._lock:
            if self._reserved.pop(task_id, None) is not None:
                self.events.publish(BalanceChanged(self.state.balance, self.held, self.available))
            amount = self.state.holds.get(task_id)
            if amount is not None:
                await self._append((Posting("release", amount, ESCROW, task_id),))

    async def release_all(self) -> int:
        """Give back every open hold (at start: no task outlives its process); how many."""
        async with self._lock:
            holds = sorted(self.state.holds.items())
            if holds:
                await self._append(tuple(Posting("release", a, ESCROW, t) for t, a in holds))
            return len(holds)

    def payer(self, worker: str) -> asyncio.Lock:
        """The lock under which receipts to ``worker`` are priced, signed and paid, one at
        a time: each states the cumulative total after the one before."""
        lock = self._payers.get(worker)
        if lock is None:
            lock = self._payers[worker] = asyncio.Lock()
        return lock

    def spent_to(self, worker: str) -> int:
        """The cumulative amount this node has paid ``worker``."""
        return self.state.total("spend", worker)

    def earned_from(self, origin: str) -> int:
        """The cumulative amount ``origin`` has paid this node."""
        return self.state.total("earn", origin)

    async def pay(self, task_id: str, worker: str, total: int, receipt_hash: str) -> None:
        """Release ``task_id``'s hold and spend what brings the total paid to ``worker`` to
        ``total`` (held under :meth:`payer`), in one transaction."""
        async with self._lock:
            postings = []
            held = self.state.holds.get(task_id)
            if held is not None:
                postings.append(Posting("release", held, ESCROW, task_id))
            self._reserved.pop(task_id, None)
            amount = total - self.spent_to(worker)
            if amount > 0:
                postings.append(Posting("spend", amount, worker, receipt_hash, total))
            if self.accounts is None:
                if postings:
                    await self._append(tuple(postings))
                return
            # The key that asked is charged the price in the payment's own transaction.
            async with self.accounts.charging(task_id, max(0, amount)) as charge:
                if postings:  # a charge comes only with a spend
                    await self._append(tuple(postings), charge)

    async def earn(self, origin: str, total: int, receipt_hash: str) -> int:
        """Earn what brings the total ``origin`` has paid this node to ``total``; the
        amount earned (0 when an earlier receipt's total was already higher)."""
        async with self._lock:
            amount = total - self.earned_from(origin)
            if amount > 0:
                await self._append((Posting("earn", amount, origin, receipt_hash, total),))
            return max(0, amount)


async def _written(write: Awaitable[None]) -> bool:
    """Await a database write to its end, even if the caller is cancelled meanwhile: the
    write runs on the database thread regardless, and the state must say whether it
    happened. Whether the caller was cancelled is returned, for it to raise once the
    state matches the disk.

    :raises Exception: the write failed.
    """
    job = asyncio.ensure_future(write)
    cancelled = False
    while not job.done():
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            cancelled = True
    job.result()
    return cancelled
