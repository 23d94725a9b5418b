"""API keys as credit accounts: each key's budget, what it spent, what its tasks may cost.

(``docs/ledger.md`` §4.) An operator gives a key a budget (``edgecoder keys budget NAME
MC``; none: no limit). Before a remote task asked for with a key is offered,
:meth:`KeyAccounts.reserve` counts its largest price against what the key has left —
its budget, less what it spent, less the largest prices of its other tasks still running —
and refuses it like an unaffordable one (:class:`~edgecoder.errors.InsufficientCreditsError`)
when it does not fit. When the task is paid, :meth:`KeyAccounts.charge` adds its price to
the key's ``spent_mc`` in the ledger's own transaction (the ``spend`` entry and the
charge are one write) and forgets the reservation; :meth:`KeyAccounts.release` forgets the
reservation of a task that failed. Work run on this node is free and never reaches here.

Reservations and charges are serialised by one lock, held by a reservation across its
read of the key and by a payment across its write: a reservation never counts a price
that was both charged and still reserved, nor one that was neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable

from edgecoder.errors import InsufficientCreditsError
from edgecoder.ledger.pricing import format_mc
from edgecoder.storage import api_keys
from edgecoder.storage.database import Database

__all__ = ("Charge", "KeyAccounts")

Charge = Callable[[sqlite3.Connection], None]
"""What a payment's transaction also writes."""


class KeyAccounts:
    """The budgets of the API keys that ask this node for remote work."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._tasks: dict[str, tuple[str, int]] = {}
        """Task id → (the key that asked for it, its largest price)."""
        self._lock = asyncio.Lock()

    def account_of(self, task_id: str) -> str | None:
        """The key whose task ``task_id`` is (None: none reserved for it)."""
        entry = self._tasks.get(task_id)
        return entry[0] if entry is not None else None

    def pending(self, account: str) -> int:
        """The largest prices of ``account``'s tasks reserved and not yet paid (mc)."""
        return sum(amount for name, amount in self._tasks.values() if name == account)

    async def reserve(self, account: str, task_id: str, amount: int) -> None:
        """Count ``amount`` against ``account``'s remaining budget for ``task_id`` (once per
        task; a key without a budget is only noted, to be charged).

        :raises InsufficientCreditsError: the key's remaining budget cannot cover it.
        :raises StorageError: the key could not be read.
        """
        async with self._lock:
            if task_id in self._tasks:
                return
            found = await self.database.run(lambda c: api_keys.budget_of(c, account))
            budget = found[0] if found is not None else None
            if budget is not None:
                assert found is not None
                left = budget - found[1] - self.pending(account)
                if amount > left:
                    raise InsufficientCreditsError(
                        f"API key '{account}' has {format_mc(max(0, left))} of its "
                        f"{format_mc(budget)} credit budget left and this task may cost up "
                        f"to {format_mc(amount)} credits; the node's operator can raise it "
                        f"(edgecoder keys budget {account} MC)"
                    )
            self._tasks[task_id] = (account, amount)

    @contextlib.asynccontextmanager
    async def charging(self, task_id: str, amount: int) -> AsyncIterator[Charge | None]:
        """While a payment of ``amount`` for ``task_id`` is written: what its transaction
        also writes (None: the task is no key's, or costs nothing more). The reservation
        is settled once the write succeeded, kept if it failed."""
        account = self.account_of(task_id)
        if account is None:
            yield None
            return
        async with self._lock:
            yield (lambda conn: api_keys.charge(conn, account, amount)) if amount > 0 else None
            self.settle(task_id)

    def settle(self, task_id: str) -> None:
        """Forget ``task_id``'s reservation: it was paid (and charged)."""
        self._tasks.pop(task_id, None)

    def release(self, task_id: str) -> None:
        """Forget ``task_id``'s reservation: it failed, nothing is charged."""
        self._tasks.pop(task_id, None)
