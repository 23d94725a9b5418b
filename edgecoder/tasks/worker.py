"""The worker side of the claim-delay protocol: the asyncio driver of its state machine.

The rules live in :class:`~edgecoder.tasks.claiming.ClaimBook` (offers, claim timers,
claims, which grants to run); this driver feeds it the messages, the clock and this
node's standing, and carries out what it asks: timers on the event loop, claims over the
transport, runs on the local backend. A run is recorded in SQLite before its first event
leaves, so not even a restart can run an attempt twice. The result streams back as
sealed events; a heartbeat renews the lease while the model reads the prompt or waits
for a slot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from edgecoder.clock import Clock
from edgecoder.config import Config
from edgecoder.errors import (
    EdgeCoderError,
    LedgerError,
    PayloadError,
    PeerTransportError,
    RefusedError,
    StorageError,
    TaskMessageError,
)
from edgecoder.events import EventHub, ReceiptSigned
from edgecoder.inference.types import ChatRequest, CompletionRequest, Delta
from edgecoder.ledger.pricing import price_mc
from edgecoder.mesh.advert_types import Advert
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.payloads import open_sealed
from edgecoder.security.stream_box import StreamBox
from edgecoder.storage import tasks as store
from edgecoder.storage.database import Database
from edgecoder.tasks.claim_delay import ClaimTiming
from edgecoder.tasks.claiming import (
    CancelTimer,
    ClaimBook,
    Key,
    SendClaim,
    SetTimer,
    Standing,
    StopRun,
    WorkerAction,
)
from edgecoder.tasks.codec import decode_payload, delta_event, encode_event
from edgecoder.tasks.errors import code_of
from edgecoder.tasks.fitness import DEFAULT_PREFILL_TPS, fits_context, predicted_ttft_ms
from edgecoder.tasks.messages import Grant, Offer
from edgecoder.tasks.receipts import check_receipt_body, sign_receipt, verify_signature
from edgecoder.tasks.transport import MessageKind, TaskTransport

__all__ = ("Worker", "WorkerHost")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerHost:
    """What the worker needs from its node."""

    advert: Callable[[], Advert | None]
    """This node's current advert (models, prefill rate, load, owner-busy)."""
    in_flight: Callable[[], int]
    """Generations running or queued on the local backend now."""
    execute: Callable[[ChatRequest | CompletionRequest], AsyncIterator[Delta]]
    """Run a generation on the local backend (never routed again)."""
    peer_key: Callable[[str], bytes | None]
    """A peer's public key from its signed peer record."""


class Worker:
    """Claims and runs tasks for peers."""

    def __init__(
        self,
        *,
        identity: NodeIdentity,
        config: Config,
        clock: Clock,
        database: Database,
        transport: TaskTransport,
        host: WorkerHost,
        events: EventHub,
        rng: random.Random | None = None,
    ) -> None:
        """``events``: where countersigned receipts are recorded (kept before the
        countersignature is handed out)."""
        self.identity = identity
        self.config = config
        self.clock = clock
        self.database = database
        self.transport = transport
        self.host = host
        self.events = events
        cfg = config.tasks
        self.book = ClaimBook(
            node_id=identity.node_id,
            slots=cfg.worker_slots,
            timing=ClaimTiming.of(cfg),
            forget_after_ms=max(cfg.offer_timeout_ms * 2, cfg.lease_ms),
            assess=self._assess,
            rng=rng or random.Random(),  # noqa: S311 - claim jitter, not a secret
        )
        self._timers: dict[tuple[str, Key], asyncio.TimerHandle] = {}
        self._stops: dict[Key, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def stats(self) -> dict[str, int]:
        """Counters; ``claim_delay_ms`` is the sum of the delays of the ``timers`` started."""
        return self.book.stats

    @property
    def task_ms(self) -> int:
        """Smoothed length of a finished run."""
        return self.book.task_ms

    @property
    def claim_rtt_ms(self) -> float:
        """Smoothed time from sending a claim to its answer."""
        return self.book.claim_rtt_ms

    @property
    def slots(self) -> int:
        """Peer tasks this node runs at once (0: it never works for peers)."""
        return self.config.tasks.worker_slots

    # -- offers and claims ----------------------------------------------------------------

    def consider(self, offer: Offer) -> str:
        """React to an offer: ``considering`` (a claim timer runs) or why not."""
        answer, actions = self.book.on_offer(offer, self._now_ms(), self.clock.now_ms())
        self._do(actions)
        return answer

    def close(self, task_id: str, attempt: int) -> bool:
        """The attempt was granted elsewhere: stay silent. True if a timer was stopped."""
        stopped, actions = self.book.on_close((task_id, attempt))
        self._do(actions)
        return stopped

    def cancel(self, task_id: str, attempt: int) -> bool:
        """Stop a running attempt (its origin's client went away). True if one was running
        or about to be claimed."""
        stopped, actions = self.book.on_cancel((task_id, attempt))
        self._do(actions)
        return stopped

    def _assess(self, offer: Offer, peers_ahead: int) -> Standing:
        """This node's standing for an offer, from its advert and its queues now."""
        advert = self.host.advert()
        held = advert.model(offer.model) if advert is not None else None
        if advert is None or held is None:
            return Standing("no_model")
        if not fits_context(held, offer.prompt_tokens):
            return Standing("context_too_small")
        local_ahead = max(0, self.host.in_flight() - self.config.inference.slots + 1)
        ttft = predicted_ttft_ms(
            model=held,
            prompt_tokens=offer.prompt_tokens,
            prefill_tps=advert.prefill_tps,
            queued_ahead=max(local_ahead, peers_ahead),
            task_ms=self.book.task_ms,
            load_pct=advert.load_pct,
            owner_busy=advert.owner_busy,
        )
        # The origin's rank already orders candidates by their advertised prefill rates;
        # the delay adds what only this node knows now: its queue, load, owner, cold model.
        rate = max(1, advert.prefill_tps or DEFAULT_PREFILL_TPS)
        return Standing(None, ttft, max(0, ttft - offer.prompt_tokens * 1000 // rate))

    @staticmethod
    def _now_ms() -> float:
        return asyncio.get_running_loop().time() * 1000

    def _do(self, actions: list[WorkerAction]) -> None:
        loop = asyncio.get_running_loop()
        for action in actions:
            if isinstance(action, SetTimer):
                old = self._timers.pop(action.token, None)
                if old is not None:
                    old.cancel()
                delay_s = max(0.0, action.at_ms / 1000 - loop.time())
                self._timers[action.token] = loop.call_later(delay_s, self._fire, action.token)
            elif isinstance(action, CancelTimer):
                timer = self._timers.pop(action.token, None)
                if timer is not None:
                    timer.cancel()
            elif isinstance(action, SendClaim):
                task = asyncio.create_task(self._claim(action))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif isinstance(action, StopRun):
                stop = self._stops.get(action.key)
                if stop is not None:
                    stop.set()

    def _fire(self, token: tuple[str, Key]) -> None:
        self._timers.pop(token, None)
        self._do(self.book.on_timer(token, self._now_ms()))

    async def _claim(self, action: SendClaim) -> None:
        claim = action.claim
        key = (claim.task_id, claim.attempt)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        rtt_ms: float | None = None
        try:
            answer = await self.transport.post(action.origin, MessageKind.CLAIM, claim.as_dict())
            result = str(answer.get("result", ""))
            rtt_ms = (loop.time() - sent) * 1000
        except PeerTransportError as exc:
            log.debug("claim for %s refused or lost: %s", claim.task_id, exc)
            # Refused: not granted. Lost on the way back: it may have been, keep it.
            result = "closed" if exc.reachable else "unknown"
        self._do(self.book.on_claim_answer(key, result, rtt_ms, self._now_ms()))

    # -- granted work ---------------------------------------------------------------------

    async def accept(self, grant: Grant, sender: str) -> AsyncIterator[bytes]:
        """Check a grant, record the run, and return its stream of sealed event lines.

        :raises RefusedError: not claimed here, from another origin, expired, already run,
            or a payload this node cannot open.
        """
        key = (grant.task_id, grant.attempt)
        refusal = self.book.grant_refusal(grant, sender, self.clock.now_ms())
        if refusal is not None:
            raise RefusedError(*refusal)
        offer = self.book.claimed_offer(key)
        assert offer is not None  # a grant is refused unless its attempt was claimed here
        try:
            sealed = base64.b64decode(grant.payload, validate=True)
            payload = decode_payload(open_sealed(self.identity, grant.task_id, sealed))
        except (ValueError, PayloadError) as exc:
            raise RefusedError("bad_payload", f"cannot open the payload: {exc}") from None
        if payload.request.model != offer.model:
            raise RefusedError("bad_payload", "the payload's model is not the offer's")
        now = self.clock.now_ms()
        # Made durable while the model reads the prompt; nothing is sent before it is.
        recorded = asyncio.ensure_future(
            self.database.run(
                lambda c: store.insert_run(
                    c, grant.task_id, grant.attempt, sender, offer.model, now
                )
            )
        )
        cancel = asyncio.Event()
        self._stops[key] = cancel
        self.book.on_run_started(key)
        box = StreamBox(payload.key, grant.task_id, grant.attempt)
        return self._stream(grant, payload.request, box, cancel, recorded)

    async def _stream(
        self,
        grant: Grant,
        request: ChatRequest | CompletionRequest,
        box: StreamBox,
        cancel: asyncio.Event,
        recorded: asyncio.Future[None],
    ) -> AsyncIterator[bytes]:
        key = (grant.task_id, grant.attempt)
        started = time.monotonic()
        # "running" until the run ends: done, failed (an error was sent) or cancelled.
        state, prompt_tokens, output_tokens = "running", 0, 0
        digest = self._digest(request.model)
        heartbeat_s = max(0.05, grant.lease_ms / 4000)
        deadline_s = started + max(0, grant.deadline_ms - self.clock.now_ms()) / 1000
        generation = self.host.execute(request)
        cancelled = asyncio.ensure_future(cancel.wait())

        def line(event: dict[str, Any]) -> bytes:
            return base64.b64encode(box.seal(encode_event(event))) + b"\n"

        step: asyncio.Future[Delta] | None = None
        ahead: asyncio.Future[Delta] | None = None
        try:
            admitted = False
            while True:
                step = ahead or asyncio.ensure_future(anext(generation))
                ahead = None
                waiting: set[asyncio.Future[Any]] = {step, cancelled}
                while not step.done():
                    remaining = deadline_s - time.monotonic()
                    await asyncio.wait(
                        waiting,
                        timeout=max(0.0, min(heartbeat_s, remaining)),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if cancel.is_set() or time.monotonic() >= deadline_s:
                        step.cancel()
                        with contextlib.suppress(BaseException):
                            await step
                        if cancel.is_set():
                            state = "cancelled"
                            return
                        state = "failed"
                        yield line({"t": "error", "code": "deadline",
                                    "message": "the task's deadline passed"})  # fmt: skip
                        return
                    if not step.done():
                        yield line({"t": "hb"})
                try:
                    delta = step.result()
                except StopAsyncIteration:
                    state = "done"
                    return
                except EdgeCoderError as exc:
                    state = "failed"
                    yield line({"t": "error", "code": code_of(exc), "message": str(exc)})
                    return
                if not admitted:
                    admitted = True  # the backend's admission marker
                    # Let the model start on the prompt while the run is made durable.
                    step = ahead = asyncio.ensure_future(anext(generation))
                    try:
                        await recorded
                    except StorageError as exc:
                        duplicate = isinstance(exc.__cause__, sqlite3.IntegrityError)
                        code = "already_ran" if duplicate else "internal_error"
                        state = "failed"
                        yield line({"t": "error", "code": code, "message": str(exc)})
                        return
                    yield line({"t": "admit"})
                    continue
                event = delta_event(delta, digest)
                if event["t"] == "end":
                    prompt_tokens = event["prompt_tokens"]
                    output_tokens = event["completion_tokens"]
                    state = "done"
                    # Recorded before the origin hears of the end: its receipt follows at once.
                    await self._record(grant, state, prompt_tokens, output_tokens)
                yield line(event)
        except (GeneratorExit, asyncio.CancelledError):
            if state == "running":
                state = "cancelled"  # the origin closed the exchange: its client went away
            raise
        finally:
            if state == "running":
                state = "failed"
            cancelled.cancel()
            # The insert finishes even if nobody waits for it (the end is recorded after it).
            recorded.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._stops.pop(key, None)
            self.book.on_run_ended(key, state == "done", int((time.monotonic() - started) * 1000))
            # A cancelled response task may not await again: clean up in a task of its own.
            if step is not None and not step.done():
                step.cancel()
            cleanup = asyncio.ensure_future(
                self._cleanup(step, generation, grant, (state, prompt_tokens, output_tokens))
            )
            self._tasks.add(cleanup)
            cleanup.add_done_callback(self._tasks.discard)

    async def _record(self, grant: Grant, state: str, prompt: int, output: int) -> None:
        now = self.clock.now_ms()
        await self.database.run(
            lambda c: store.finish_run(c, grant.task_id, grant.attempt, state, prompt, output, now)
        )

    async def _cleanup(
        self,
        step: asyncio.Future[Delta] | None,
        generation: AsyncIterator[Delta],
        grant: Grant,
        outcome: tuple[str, int, int],
    ) -> None:
        if step is not None:
            with contextlib.suppress(BaseException):
                await step
        with contextlib.suppress(Exception):
            await generation.aclose()  # type: ignore[attr-defined]
        if outcome[0] != "done":
            try:
                await self._record(grant, *outcome)
            except StorageError as exc:
                log.error("task %s: could not record the run's end: %s", grant.task_id, exc)

    def _digest(self, model: str) -> str:
        advert = self.host.advert()
        held = advert.model(model) if advert is not None else None
        return held.digest if held is not None else ""

    # -- receipts -------------------------------------------------------------------------

    async def countersign(self, document: object, sender: str) -> str:
        """Check the origin's receipt against this node's own record of the run; sign it.

        :raises RefusedError: malformed, not this node's run, numbers that differ from what
            it did, a bad origin signature, or this node cannot keep it now (a full disk).
        """
        if not isinstance(document, dict) or set(document) != {"body", "origin_sig"}:
            raise RefusedError("bad_receipt", "body must be {body, origin_sig}")
        try:
            body = check_receipt_body(document["body"])
        except TaskMessageError as exc:
            raise RefusedError(exc.code, str(exc)) from None
        origin_sig = document["origin_sig"]
        if body["origin"] != sender or body["worker"] != self.identity.node_id:
            raise RefusedError("bad_receipt", "the receipt names other nodes")
        key = self.host.peer_key(sender)
        if (
            key is None
            or not isinstance(origin_sig, str)
            or not verify_signature(key, body, origin_sig)
        ):
            raise RefusedError("bad_signature", "the origin's signature does not verify")
        run = await self.database.run(lambda c: store.get_run(c, body["task_id"], body["attempt"]))
        if run is None or run.origin != sender or run.state != "done":
            raise RefusedError("no_such_run", "this node finished no such run")
        advert = self.host.advert()
        pct = (advert.price_pct if advert is not None else 0) or 100
        held = advert.model(run.model) if advert is not None else None
        price = price_mc(run.prompt_tokens, run.output_tokens,
                         held.size_class if held is not None else "?", pct)  # fmt: skip
        mine = (run.prompt_tokens, run.output_tokens, run.model, self._digest(run.model), pct,
                price)  # fmt: skip
        theirs = (body["prompt_tokens"], body["output_tokens"], body["model"],
                  body["model_digest"], body["price_pct"], body["price"])  # fmt: skip
        if mine != theirs:
            raise RefusedError("receipt_mismatch", f"this node recorded {mine}, not {theirs}")
        if body["total"] < price:
            raise RefusedError("receipt_mismatch", "the total paid is less than this price")
        worker_sig = sign_receipt(self.identity, body)
        try:
            # Kept and earned (up to the receipt's total) before the signature is given.
            await self.events.record(ReceiptSigned("worker", body, origin_sig, worker_sig))
        except (StorageError, LedgerError) as exc:
            # Not kept, not given: a countersignature a crash could take back is none.
            raise RefusedError("storage_unavailable", f"cannot keep the receipt: {exc}") from None
        return worker_sig

    async def aclose(self) -> None:
        """Cancel timers, claims in flight and running attempts."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for event in self._stops.values():
            event.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
