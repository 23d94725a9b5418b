"""Receipts whose countersignature was lost, sent again until the worker answers for good.

The origin keeps (and pays) a receipt before it asks the worker to countersign it
(:mod:`edgecoder.tasks.origin`). When the answer is lost — the worker unreachable, busy,
not yet knowing the origin's key, its signature not verifying — the receipt waits, kept
with an empty ``worker_sig``, and :class:`ReceiptSender` sends it again, one worker's
receipts oldest first, after a delay that doubles from ``tasks.receipt_retry_min_ms`` to
at most ``tasks.receipt_retry_max_s`` while that worker does not answer and starts over
once it does. A receipt ends when the worker countersigns it (the signature is kept with
it) or refuses it with a code that will not change (:data:`FINAL_REFUSALS`: the refusal
is kept, and it is never sent again). A restart sends again every receipt still waiting
(:meth:`ReceiptSender.resume`). A later receipt to the same worker restates the
cumulative total, so the worker is paid even before a lost one arrives; the lost one
still completes both chains' records of the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from edgecoder.clock import Clock
from edgecoder.config import Config
from edgecoder.errors import PeerTransportError, StorageError
from edgecoder.events import EventHub, ReceiptSigned
from edgecoder.storage import tasks as store
from edgecoder.storage.database import Database
from edgecoder.tasks.receipts import verify_signature
from edgecoder.tasks.transport import MessageKind, TaskTransport

__all__ = ("FINAL_REFUSALS", "ReceiptSender", "Sent", "next_delay_s")

log = logging.getLogger(__name__)

FINAL_REFUSALS: Final = frozenset({"receipt_mismatch", "no_such_run", "bad_receipt"})
"""Refusals that sending again cannot change: the worker's own record of the run says
otherwise, it has none, or the receipt is malformed. (``bad_signature`` is not one: a
worker that does not know the origin's key yet will.)"""


@dataclass(frozen=True, slots=True)
class Sent:
    """How one sending of a receipt ended: ``countersigned``, ``refused`` (for good, with
    ``code``) or ``waiting`` (try again later; ``code`` says why)."""

    outcome: str
    code: str = ""


def next_delay_s(previous_s: float | None, min_s: float, max_s: float) -> float:
    """The wait before the next try after a try that did not end the receipt: ``min_s``
    first, then twice the previous, never more than ``max_s``."""
    if previous_s is None:
        return min(min_s, max_s)
    return min(max(previous_s * 2, min_s), max_s)


class ReceiptSender:
    """Asks workers to countersign this node's receipts, again until each is settled."""

    def __init__(
        self,
        *,
        config: Config,
        clock: Clock,
        database: Database,
        transport: TaskTransport,
        peer_key: Callable[[str], bytes | None],
        events: EventHub,
        stats: dict[str, int],
    ) -> None:
        """``stats``: the origin's counters (``receipts_resent``, ``receipts_refused``)."""
        self.config = config
        self.clock = clock
        self.database = database
        self.transport = transport
        self.peer_key = peer_key
        self.events = events
        self.stats = stats
        self._waiting: dict[str, deque[tuple[dict[str, Any], str]]] = {}
        """Per worker, its receipts still to be countersigned, oldest first."""
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def waiting(self, worker: str | None = None) -> int:
        """Receipts waiting for a countersignature (to ``worker``, or to anyone)."""
        if worker is not None:
            return len(self._waiting.get(worker, ()))
        return sum(len(queue) for queue in self._waiting.values())

    async def send(self, body: dict[str, Any], origin_sig: str) -> Sent:
        """Ask the worker to countersign a kept receipt; if it does not answer for good,
        the receipt waits and is sent again later."""
        sent = await self._ask(body, origin_sig)
        if sent.outcome == "waiting":
            self._wait(body, origin_sig)
        return sent

    async def resume(self) -> int:
        """Send again, later, every receipt a previous run left waiting; how many.

        :raises StorageError: they could not be read.
        """
        for receipt in await self.database.run(store.waiting_receipts):
            self._wait(receipt["body"], receipt["origin_sig"])
        return self.waiting()

    def _wait(self, body: dict[str, Any], origin_sig: str) -> None:
        if self._closed:
            return
        worker = str(body["worker"])
        queue = self._waiting.setdefault(worker, deque())
        queue.append((body, origin_sig))
        if worker not in self._loops:
            loop = asyncio.create_task(self._retry(worker), name=f"edgecoder-receipts-{worker}")
            self._loops[worker] = loop

    async def _retry(self, worker: str) -> None:
        queue = self._waiting[worker]
        cfg = self.config.tasks
        min_s, max_s = cfg.receipt_retry_min_ms / 1000, float(cfg.receipt_retry_max_s)
        delay: float | None = None
        try:
            while queue:
                delay = next_delay_s(delay, min_s, max_s)
                await asyncio.sleep(delay)
                body, origin_sig = queue[0]
                self.stats["receipts_resent"] = self.stats.get("receipts_resent", 0) + 1
                sent = await self._ask(body, origin_sig)
                if sent.outcome == "waiting":
                    continue
                queue.popleft()
                delay = None  # the worker answers: the next one goes at the shortest wait
        finally:
            del self._loops[worker]
            if not queue:
                del self._waiting[worker]

    async def _ask(self, body: dict[str, Any], origin_sig: str) -> Sent:
        """One request for the worker's countersignature, its outcome kept."""
        worker, task_id = str(body["worker"]), str(body["task_id"])
        try:
            answer = await self.transport.post(
                worker, MessageKind.RECEIPT, {"body": body, "origin_sig": origin_sig}
            )
        except PeerTransportError as exc:
            if exc.reachable and exc.code in FINAL_REFUSALS:
                return await self._refused(body, exc.code, str(exc))
            log.info("task %s: the worker did not countersign its receipt (%s); it is sent "
                     "again later", task_id, exc.code)  # fmt: skip
            return Sent("waiting", exc.code)
        worker_sig = answer.get("worker_sig")
        key = self.peer_key(worker)
        if not isinstance(worker_sig, str) or key is None:
            return Sent("waiting", "no_signature" if key is not None else "unknown_key")
        if not verify_signature(key, body, worker_sig):
            log.warning("task %s: the worker's countersignature does not verify", task_id)
            return Sent("waiting", "bad_signature")
        try:
            await self.events.record(ReceiptSigned("origin", body, origin_sig, worker_sig))
        except StorageError as exc:
            log.error("task %s: could not keep the countersigned receipt: %s", task_id, exc)
            return Sent("waiting", "storage_unavailable")
        return Sent("countersigned")

    async def _refused(self, body: dict[str, Any], code: str, message: str) -> Sent:
        task_id, attempt = str(body["task_id"]), int(body["attempt"])
        self.stats["receipts_refused"] = self.stats.get("receipts_refused", 0) + 1
        log.warning("task %s: the worker refused its receipt for good: %s", task_id, message)
        try:
            await self.database.run(lambda c: store.refuse_receipt(c, task_id, attempt, code))
        except StorageError as exc:  # then a restart asks once more, and hears it again
            log.error("task %s: could not record the refusal: %s", task_id, exc)
        return Sent("refused", code)

    async def aclose(self) -> None:
        """Stop sending (what still waits is sent again by the next run)."""
        self._closed = True
        loops = list(self._loops.values())
        for loop in loops:
            loop.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*loops, return_exceptions=True)
