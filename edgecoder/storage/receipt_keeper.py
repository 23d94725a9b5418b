"""Keeps every receipt this node signs: the database's keeper of ``receipt.signed`` events.

The origin and the worker publish their signatures as
:class:`~edgecoder.events.ReceiptSigned` events through
:meth:`~edgecoder.events.EventHub.record`, which returns once this keeper has written the
receipt, so a worker never hands out a countersignature (and an origin never asks for
one) that a crash could take back. The ledger will keep the same events the same way.
"""

from __future__ import annotations

from edgecoder.clock import Clock
from edgecoder.events import Event, EventHub, ReceiptSigned
from edgecoder.storage import tasks as store
from edgecoder.storage.database import Database

__all__ = ("ReceiptKeeper",)


class ReceiptKeeper:
    """Writes each signed receipt to the ``receipts`` table (a later signature of the
    same receipt completes the row)."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self.database = database
        self.clock = clock

    def attach(self, hub: EventHub) -> ReceiptKeeper:
        """Keep ``hub``'s receipts from now on; returns itself."""
        hub.keep(self.keep, {ReceiptSigned.kind})
        return self

    async def keep(self, event: Event) -> None:
        """Write the receipt.

        :raises StorageError: it could not be written (then nobody hears of it).
        """
        assert isinstance(event, ReceiptSigned)
        body, now = dict(event.body), self.clock.now_ms()
        await self.database.run(
            lambda c: store.store_receipt(
                c, event.role, body, event.origin_sig, event.worker_sig, now
            )
        )
