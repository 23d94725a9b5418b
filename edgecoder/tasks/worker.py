"""The worker side of the claim-delay protocol: weigh offers, claim, run only what is granted.

An offer this node can serve starts a timer whose length grows with its predicted time
to first token (:func:`~edgecoder.tasks.fitness.claim_delay_ms`). A ``close`` notice for
the attempt before the timer fires cancels it: the node stays silent. When the timer
fires it claims; the origin's answer says whether this node is the grantee. A grant is
accepted only for an attempt this node claimed, from that attempt's origin, before its
deadline, and only once (the run is recorded in SQLite before it starts, so not even a
restart can run it twice). The result streams back as sealed events; a heartbeat renews
the lease while the model reads the prompt or waits for a slot.

A worker holds at most two claims per slot (one running, one waiting): beyond that it
answers offers ``busy`` and lets timers that fire pass in silence, so work goes to free
candidates instead of queueing where it cannot start.
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
    PayloadError,
    PeerTransportError,
    RefusedError,
    StorageError,
    TaskMessageError,
)
from edgecoder.inference.types import ChatRequest, CompletionRequest, Delta
from edgecoder.mesh.advert_types import Advert
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.payloads import open_sealed
from edgecoder.security.stream_box import StreamBox
from edgecoder.storage import tasks as store
from edgecoder.storage.database import Database
from edgecoder.tasks.codec import decode_payload, delta_event, encode_event
from edgecoder.tasks.errors import code_of
from edgecoder.tasks.fitness import (
    DEFAULT_PREFILL_TPS,
    claim_delay_ms,
    fits_context,
    predicted_ttft_ms,
)
from edgecoder.tasks.messages import Claim, Grant, Offer
from edgecoder.tasks.receipts import check_receipt_body, sign_receipt, verify_signature
from edgecoder.tasks.transport import MessageKind, TaskTransport

__all__ = ("Worker", "WorkerHost")

log = logging.getLogger(__name__)

_EWMA_START_MS = 2000
_MAX_PENDING = 4096
_CLAIMS_PER_SLOT = 2


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
        rng: random.Random | None = None,
    ) -> None:
        self.identity = identity
        self.config = config
        self.clock = clock
        self.database = database
        self.transport = transport
        self.host = host
        self._rng = rng or random.Random()  # noqa: S311 - claim jitter, not a secret
        self._timers: dict[tuple[str, int], asyncio.TimerHandle] = {}
        self._claimed: dict[tuple[str, int], Offer] = {}
        self._running: dict[tuple[str, int], asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.task_ms = _EWMA_START_MS
        self.claim_rtt_ms = 0.0
        """Smoothed time from sending a claim to its answer."""
        self.stats = {"offers": 0, "claims": 0, "grants": 0, "runs": 0, "silent": 0,
                      "busy": 0, "claim_delay_ms": 0}  # fmt: skip
        """Counters; ``claim_delay_ms`` is the sum of the delays of every timer started."""

    @property
    def slots(self) -> int:
        """Peer tasks this node runs at once (0: it never works for peers)."""
        return self.config.tasks.worker_slots

    # -- offers and claims ----------------------------------------------------------------

    def consider(self, offer: Offer) -> str:
        """React to an offer: ``considering`` (a claim timer runs) or why not."""
        self.stats["offers"] += 1
        key = (offer.task_id, offer.attempt)
        if self.slots <= 0:
            return "not_a_worker"
        if key in self._timers or key in self._claimed:
            return "considering"
        if offer.deadline_ms <= self.clock.now_ms():
            return "expired"
        if len(self._timers) >= _MAX_PENDING or self._full():
            self.stats["busy"] += 1
            return "busy"
        advert = self.host.advert()
        held = advert.model(offer.model) if advert is not None else None
        if advert is None or held is None:
            return "no_model"
        if not fits_context(held, offer.prompt_tokens):
            return "context_too_small"
        prefill_tps = advert.prefill_tps
        ttft = predicted_ttft_ms(
            model=held,
            prompt_tokens=offer.prompt_tokens,
            prefill_tps=prefill_tps,
            queued_ahead=self._queued_ahead(),
            task_ms=self.task_ms,
            load_pct=advert.load_pct,
            owner_busy=advert.owner_busy,
        )
        # The origin's rank already orders candidates by their advertised prefill rates;
        # the delay adds what only this node knows now: its queue, load, owner, cold model.
        prefill = offer.prompt_tokens * 1000 // max(1, prefill_tps or DEFAULT_PREFILL_TPS)
        cfg = self.config.tasks
        jitter = self._rng.uniform(0, cfg.claim_jitter_ms)
        extra = max(0, ttft - prefill)
        delay = claim_delay_ms(extra, cfg.ttft_budget_ms, cfg.claim_delay_max_ms, jitter)
        # Rank r waits r staggers, each at least a claim's round trip: the time it takes the
        # origin to hear a better-ranked claim and its close notice to come back.
        delay += offer.rank * max(cfg.claim_stagger_ms, self.claim_rtt_ms)
        self.stats["claim_delay_ms"] += round(delay)
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay / 1000, self._fire, offer, ttft)
        return "considering"

    def _full(self) -> bool:
        """Whether this node holds all the claims it may: one running and one waiting per
        slot. More would only queue here while other candidates are free."""
        return len(self._claimed) >= self.slots * _CLAIMS_PER_SLOT

    def _queued_ahead(self) -> int:
        local = max(0, self.host.in_flight() - self.config.inference.slots + 1)
        peers = max(0, len(self._running) - self.slots + 1)
        return max(local, peers)

    def close(self, task_id: str, attempt: int) -> bool:
        """The attempt was granted elsewhere: stay silent. True if a timer was stopped."""
        key = (task_id, attempt)
        if key not in self._running:
            self._claimed.pop(key, None)  # a pending claim that lost: its capacity is free
        timer = self._timers.pop(key, None)
        if timer is None:
            return False
        timer.cancel()
        self.stats["silent"] += 1
        return True

    def _fire(self, offer: Offer, ttft_ms: int) -> None:
        key = (offer.task_id, offer.attempt)
        if self._timers.pop(key, None) is None:
            return
        if self._full():
            self.stats["silent"] += 1  # work was granted here meanwhile: let another take it
            return
        # Claimed before the claim leaves: the grant may overtake the claim's answer.
        self._claimed[key] = offer
        task = asyncio.create_task(self._claim(offer, ttft_ms))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _claim(self, offer: Offer, ttft_ms: int) -> None:
        key = (offer.task_id, offer.attempt)
        claim = Claim(offer.task_id, offer.attempt, self.identity.node_id, ttft_ms)
        self.stats["claims"] += 1
        loop = asyncio.get_running_loop()
        sent = loop.time()
        try:
            answer = await self.transport.post(offer.origin, MessageKind.CLAIM, claim.as_dict())
            self.claim_rtt_ms += ((loop.time() - sent) * 1000 - self.claim_rtt_ms) / 8
        except PeerTransportError as exc:
            log.debug("claim for %s refused or lost: %s", offer.task_id, exc)
            # Refused: not granted. Lost on the way back: it may have been, keep it.
            answer = {"result": "closed" if exc.reachable else "unknown"}
        if answer.get("result") == "closed" and key not in self._running:
            self._claimed.pop(key, None)
            return
        # Granted (or pending, or unknown): the grant arrives as its own request, as late
        # as a busy origin sends it; forget the claim if it never does.
        cfg = self.config.tasks
        await asyncio.sleep(max(cfg.offer_timeout_ms * 2, cfg.lease_ms) / 1000)
        if key not in self._running:
            self._claimed.pop(key, None)

    # -- granted work ---------------------------------------------------------------------

    async def accept(self, grant: Grant, sender: str) -> AsyncIterator[bytes]:
        """Check a grant, record the run, and return its stream of sealed event lines.

        :raises RefusedError: not claimed here, from another origin, expired, already run,
            or a payload this node cannot open.
        """
        key = (grant.task_id, grant.attempt)
        offer = self._claimed.get(key)
        if offer is None or offer.origin != sender:
            raise RefusedError("not_claimed", "this node has no open claim for that attempt")
        if grant.deadline_ms <= self.clock.now_ms():
            raise RefusedError("expired", "the task's deadline has passed")
        if key in self._running:
            raise RefusedError("already_running", "this attempt is already running here")
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
        self._running[key] = cancel
        self.stats["grants"] += 1
        box = StreamBox(payload.key, grant.task_id, grant.attempt)
        return self._stream(grant, payload.request, box, cancel, recorded)

    def cancel(self, task_id: str, attempt: int) -> bool:
        """Stop a running attempt (its origin's client went away). True if one was running."""
        event = self._running.get((task_id, attempt))
        if event is None:
            return self.close(task_id, attempt)
        event.set()
        return True

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
        state, prompt_tokens, output_tokens = "failed", 0, 0
        digest = self._digest(request.model)
        heartbeat_s = max(0.05, grant.lease_ms / 4000)
        deadline_s = started + max(0, grant.deadline_ms - self.clock.now_ms()) / 1000
        generation = self.host.execute(request)
        cancelled = asyncio.ensure_future(cancel.wait())
        self.stats["runs"] += 1

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
            if state != "done":
                state = "cancelled"  # the origin closed the exchange: its client went away
            raise
        finally:
            cancelled.cancel()
            # The insert finishes even if nobody waits for it (the end is recorded after it).
            recorded.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._running.pop(key, None)
            self._claimed.pop(key, None)
            elapsed_ms = int((time.monotonic() - started) * 1000)
            if state == "done":
                self.task_ms = (self.task_ms * 3 + elapsed_ms) // 4
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
            it did, or a bad origin signature.
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
        price = (advert.price_pct if advert is not None else 0) or 100
        mine = (run.prompt_tokens, run.output_tokens, run.model, self._digest(run.model), price)
        theirs = (body["prompt_tokens"], body["output_tokens"], body["model"],
                  body["model_digest"], body["price_pct"])  # fmt: skip
        if mine != theirs:
            raise RefusedError("receipt_mismatch", f"this node recorded {mine}, not {theirs}")
        worker_sig = sign_receipt(self.identity, body)
        now = self.clock.now_ms()
        await self.database.run(
            lambda c: store.store_receipt(c, "worker", body, origin_sig, worker_sig, now)
        )
        return worker_sig

    async def aclose(self) -> None:
        """Cancel timers, claims in flight and running attempts."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for event in self._running.values():
            event.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
