"""The ledger as a keeper of receipts: every receipt this node signs moves credits.

Subscribed with :meth:`~edgecoder.events.EventHub.keep` to ``receipt.signed``, after the
receipt store: an origin's first signature releases the task's hold and spends what
brings its total paid to the worker to the receipt's ``total``; a worker's countersignature
earns what brings its total from that origin there. Both happen before the publisher
goes on (the origin asks for the countersignature, the worker hands it out), so no
acknowledged receipt is missing from a chain after a crash.
"""

from __future__ import annotations

from edgecoder.events import Event, EventHub, ReceiptSigned
from edgecoder.ledger.book import Ledger
from edgecoder.tasks.receipts import receipt_hash

__all__ = ("LedgerKeeper",)


class LedgerKeeper:
    """Turns signed receipts into chain entries."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def attach(self, hub: EventHub) -> LedgerKeeper:
        """Keep ``hub``'s receipts from now on (attach after the receipt store)."""
        hub.keep(self.keep, {ReceiptSigned.kind})
        return self

    async def keep(self, event: Event) -> None:
        """Append what the receipt moves.

        :raises LedgerError: it would break the chain rules (an overdraft).
        :raises StorageError: the entries could not be written.
        """
        assert isinstance(event, ReceiptSigned)
        body = event.body
        total = body["total"]
        assert isinstance(total, int)
        if event.role == "origin" and not event.worker_sig:
            await self.ledger.pay(str(body["task_id"]), str(body["worker"]), total,
                                  receipt_hash(dict(body)))  # fmt: skip
        elif event.role == "worker":
            await self.ledger.earn(str(body["origin"]), total, receipt_hash(dict(body)))
