"""The origin side of the claim-delay protocol: offer, grant once, relay, fail over, sign.

One task is one client request sent to the mesh. Each attempt is an
:class:`~edgecoder.tasks.offering.OfferAttempt` (the pure state machine that offers it,
with no prompt, to the fittest candidates and grants one claim); this driver carries out
its actions, seals the request to the grantee alone, and relays the worker's sealed
events to the client as deltas, the lease watched by a
:class:`~edgecoder.tasks.relaying.RunWatch`. A worker that dies, stalls past the lease,
breaks the stream or fails with a retryable error ends the attempt: the next one
excludes it and continues from the output already sent. A client that goes away closes
the stream, which cancels the worker's generation; an explicit ``cancel`` notice
follows. When the task ends the origin signs a receipt, keeps and pays it, and asks the
worker to countersign it; both keep it. A receipt whose countersignature was lost is sent
again until the worker answers for good (:mod:`edgecoder.tasks.resending`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from edgecoder.clock import Clock
from edgecoder.config import Config
from edgecoder.errors import (
    BackendUnavailableError,
    EdgeCoderError,
    InferenceError,
    InsufficientCreditsError,
    LedgerError,
    PayloadError,
    PeerTransportError,
    StorageError,
)
from edgecoder.events import EventHub, ReceiptSigned, TaskFinished, TaskStarted
from edgecoder.inference.types import ChatRequest, CompletionRequest, Delta, Usage
from edgecoder.ledger.book import Ledger
from edgecoder.ledger.pricing import most_mc, price_mc
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.payloads import seal
from edgecoder.security.stream_box import StreamBox, new_stream_key
from edgecoder.storage import tasks as store
from edgecoder.storage.database import Database
from edgecoder.tasks.arbiter import CLOSED
from edgecoder.tasks.codec import decode_event, encode_payload
from edgecoder.tasks.errors import error_of
from edgecoder.tasks.fitness import Fit
from edgecoder.tasks.messages import Claim, Grant, Notice, Offer, new_task_id
from edgecoder.tasks.offering import (
    ClaimWait,
    Granted,
    NoClaim,
    OfferAction,
    OfferAttempt,
    SendClose,
    SendOffer,
    Wake,
)
from edgecoder.tasks.receipts import sign_receipt
from edgecoder.tasks.relaying import RunWatch, Verdict
from edgecoder.tasks.resending import ReceiptSender
from edgecoder.tasks.transport import UNAVAILABLE, MessageKind, TaskTransport

__all__ = ("Origin", "RemoteTask")

log = logging.getLogger(__name__)

_MAX_BACKGROUND = 512
"""Notices in flight beyond which ``close`` notices (advisory) are not sent."""
MAX_REST_S = 30.0
"""The longest a peer's ``Retry-After`` keeps it at the end of the ranking."""
_MAX_RESTING = 1024


class _AttemptFailedError(EdgeCoderError):
    """This attempt cannot finish; another worker may."""


@dataclass(slots=True)
class _Live:
    """A task's open attempt, as the claim route finds it."""

    offering: OfferAttempt | None = None
    outcome: asyncio.Future[Claim] | None = None
    wake: asyncio.TimerHandle | None = None
    claims: int = 0
    """Claims received for the task, every attempt."""


@dataclass(slots=True)
class RemoteTask:
    """One request to run on the mesh, and its progress."""

    request: ChatRequest | CompletionRequest
    prompt_tokens: int
    """The origin's estimate (an upper bound) of the prompt's tokens."""
    candidates: Callable[[frozenset[str]], list[Fit]]
    """The fittest peers for this task, best first, excluding the given node ids."""
    on_worker: Callable[[str], None] = lambda node_id: None
    claim_patience_s: float | None = None
    """How long to wait for a claim before giving up (None: ``tasks.claim_patience_s``);
    shorter when the caller can run the request itself instead."""
    account: str | None = None
    """The API key that asked for it: its credit account, charged the task's price (None:
    no key's, as for a task a test makes)."""
    task_id: str = field(default_factory=new_task_id)
    attempt: int = 0
    worker: str | None = None
    excluded: set[str] = field(default_factory=set)
    partial: list[str] = field(default_factory=list)
    earlier_tokens: int = 0
    """Output tokens streamed by earlier attempts (one per text event)."""
    output_tokens: int = 0
    prices: dict[str, int] = field(default_factory=dict)
    """Each candidate's advertised price multiplier, as offered to."""
    fits: dict[str, Fit] = field(default_factory=dict)
    """Each candidate as it was offered the task (its price multiplier and size class)."""
    hold_mc: int = 0
    """What escrow holds for the task: its largest price among the candidates."""
    holding: asyncio.Future[None] | None = None
    """The durable ``hold`` entry being written while the task is offered."""
    state: str = "offered"
    error: str | None = None

    @property
    def kind(self) -> str:
        """``chat`` or ``complete``."""
        return "chat" if isinstance(self.request, ChatRequest) else "complete"

    @property
    def max_tokens(self) -> int:
        """The output budget the request asks for (0: the model's default)."""
        return self.request.sampling.max_tokens or 0


def _remaining(task: RemoteTask) -> ChatRequest | CompletionRequest:
    """The request for the next attempt: its output budget less what was already sent."""
    request, spent = task.request, task.earlier_tokens
    if not spent or request.sampling.max_tokens is None:
        return request
    budget = max(1, request.sampling.max_tokens - spent)
    return replace(request, sampling=replace(request.sampling, max_tokens=budget))


class Origin:
    """Sends this node's requests to the mesh."""

    def __init__(
        self,
        *,
        identity: NodeIdentity,
        config: Config,
        clock: Clock,
        database: Database,
        transport: TaskTransport,
        peer_key: Callable[[str], bytes | None],
        events: EventHub,
        ledger: Ledger,
    ) -> None:
        """``events``: where tasks starting and finishing, and receipts, are published
        (receipts are recorded: kept before the worker is asked to countersign);
        ``ledger``: this node's chain, whose escrow holds each task's largest price
        before it is offered and whose payments the receipts state."""
        self.identity = identity
        self.config = config
        self.clock = clock
        self.database = database
        self.transport = transport
        self.peer_key = peer_key
        self._live: dict[str, _Live] = {}
        self.events = events
        self.ledger = ledger
        self.assigned: Counter[str] = Counter()
        """How many of this node's attempts run on each worker now."""
        self._background: set[asyncio.Task[Any]] = set()
        self._claim_wait = ClaimWait(config.tasks.offer_timeout_ms)
        self._resting: dict[str, float] = {}
        """Peers that asked (``Retry-After``) to be left alone, until when (loop time)."""
        self.stats = {"tasks": 0, "offers": 0, "declined": 0, "rounds": 0, "claims": 0,
                      "late_claims": 0, "grants": 0, "failovers": 0, "done": 0, "failed": 0,
                      "cancelled": 0, "receipts_resent": 0, "receipts_refused": 0}  # fmt: skip
        self.receipts = ReceiptSender(config=config, clock=clock, database=database,
                                      transport=transport, peer_key=peer_key, events=events,
                                      stats=self.stats)  # fmt: skip
        """Asks workers to countersign receipts, again until each is settled."""

    # -- claims (called by the mesh route) ------------------------------------------------

    def on_claim(self, claim: Claim) -> str:
        """Decide on a claim: ``granted`` (the grant follows), ``pending`` or ``closed``."""
        live = self._live.get(claim.task_id)
        offering = live.offering if live is not None else None
        if live is None or offering is None:
            self.stats["claims"] += 1
            self.stats["late_claims"] += 1
            log.debug("late claim for finished task %s attempt %d from %s: dropped",
                      claim.task_id, claim.attempt, claim.worker)  # fmt: skip
            return CLOSED
        live.claims += 1
        decision, actions = offering.on_claim(claim, self._now_ms())
        self._apply(live, offering, actions)
        return decision

    @staticmethod
    def _now_ms() -> float:
        return asyncio.get_running_loop().time() * 1000

    # -- running a task -------------------------------------------------------------------

    async def run(self, task: RemoteTask) -> AsyncGenerator[Delta, None]:
        """The task's deltas: an admission marker once a worker admits it, then the output.

        :raises InferenceError: before admission, when no peer can run it or the error
            would happen anywhere (the prompt does not fit); after admission, when every
            attempt failed.
        :raises InsufficientCreditsError: before anything is sent, this node's credits or
            the API key's budget cannot cover it.
        :raises StorageError: before anything is sent, the key's budget could not be read.
        """
        self.stats["tasks"] += 1
        self._live[task.task_id] = _Live()
        try:
            await self._reserve(task)
        except BaseException as exc:  # a refusal, or the client gone while a key was read
            self._live.pop(task.task_id, None)
            task.state, task.error = "failed", str(exc)
            if isinstance(exc, InsufficientCreditsError):
                self.stats["unaffordable"] = self.stats.get("unaffordable", 0) + 1
            raise
        self._hold(task)  # written while the offer goes round; awaited before the grant
        now = self.clock.now_ms()
        persisted = asyncio.ensure_future(self.database.run(
            lambda c: store.insert_task(c, task.task_id, task.kind, task.request.model,
                                        task.prompt_tokens, task.max_tokens, now)
        ))  # fmt: skip
        deadline_ms = now + self.config.tasks.deadline_s * 1000
        admitted = False
        failures = 0
        try:
            while True:
                if failures >= self.config.tasks.max_attempts:
                    raise BackendUnavailableError(
                        f"no peer finished the task in {self.config.tasks.max_attempts} attempts"
                    )
                task.attempt += 1
                claim = await self._offer(task, deadline_ms)
                task.worker = claim.worker
                self.assigned[claim.worker] += 1
                try:
                    async for delta in self._attempt(task, deadline_ms, persisted, admitted):
                        if not admitted:
                            admitted = True
                            task.state = "running"
                            task.on_worker(claim.worker)
                            self.events.publish(TaskStarted(task.task_id, claim.worker))
                        yield delta
                        if delta.finish_reason is not None:
                            task.state = "done"
                            return
                    raise _AttemptFailedError("the worker's stream ended before the output did")
                except _AttemptFailedError as exc:
                    failures += 1
                    self.stats["failovers"] += 1
                    log.warning("task %s attempt %d on %s failed: %s; offering it again",
                                task.task_id, task.attempt, claim.worker, exc)  # fmt: skip
                    task.excluded.add(claim.worker)
                    self._notify(claim.worker, MessageKind.CANCEL, task)
                finally:
                    self.assigned[claim.worker] -= 1
                    if self.assigned[claim.worker] <= 0:
                        del self.assigned[claim.worker]
        except GeneratorExit:
            task.state = "cancelled"
            raise
        except asyncio.CancelledError:
            task.state = "cancelled"
            raise
        except InferenceError as exc:
            task.state, task.error = "failed", str(exc)
            raise
        finally:
            # A cancelled client response may not await again: finish in a task of its own.
            self._spawn(self._finish(task, persisted))

    def _most(self, task: RemoteTask, fit: Fit) -> int:
        """The most ``task`` can cost on ``fit``'s node."""
        return most_mc(task.prompt_tokens, task.max_tokens, fit.size_class, fit.price_pct,
                       fit.context_length)  # fmt: skip

    async def _reserve(self, task: RemoteTask) -> None:
        """Have escrow count the task's largest price among its candidates now, against
        this node's credits and the budget of the API key that asked for it.

        :raises InsufficientCreditsError: this node's credits, or the key's budget, cannot
            cover it.
        :raises StorageError: the key's budget could not be read.
        """
        fits = task.candidates(frozenset())
        if fits:  # with none, nobody will be paid: the offer fails on its own
            task.hold_mc = max(self._most(task, fit) for fit in fits)
            await self.ledger.reserve_for(task.account, task.task_id, task.hold_mc)

    def _hold(self, task: RemoteTask) -> asyncio.Future[None]:
        """The write of the task's durable hold: started once, again if it failed."""
        job = task.holding
        if job is None or (job.done() and job.exception() is not None):
            job = task.holding = asyncio.ensure_future(self.ledger.hold(task.task_id))
            job.add_done_callback(lambda f: f.cancelled() or f.exception())
        return job

    def _affordable(self, task: RemoteTask, fits: list[Fit]) -> list[Fit]:
        """The candidates whose price the task's hold covers (noting how each is offered)."""
        out = [fit for fit in fits if self._most(task, fit) <= task.hold_mc]
        task.fits.update((fit.node_id, fit) for fit in out)
        return out

    def _notify(self, node_id: str, kind: MessageKind, task: RemoteTask) -> None:
        body = Notice(task.task_id, task.attempt).as_dict()
        self._spawn(self._post_quietly(node_id, kind, body))

    async def _post_quietly(self, node_id: str, kind: MessageKind, body: dict[str, Any]) -> None:
        try:
            await self.transport.post(node_id, kind, body)
        except PeerTransportError as exc:
            log.debug("%s to %s: %s", kind, node_id, exc)

    def _spawn(self, coro: Any) -> None:
        job = asyncio.ensure_future(coro)
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def _offer(self, task: RemoteTask, deadline_ms: int) -> Claim:
        """Run the attempt's :class:`OfferAttempt` until it grants one claim.

        :raises InferenceError: no peer can run the task, or none claimed it within
            ``tasks.claim_patience_s``.
        """
        cfg = self.config.tasks
        live = self._live[task.task_id]
        offer = Offer(
            task_id=task.task_id,
            attempt=task.attempt,
            origin=self.identity.node_id,
            origin_key=self.identity.public_key.hex(),
            kind=task.kind,
            model=task.request.model,
            prompt_tokens=task.prompt_tokens,
            max_tokens=task.max_tokens,
            deadline_ms=deadline_ms,
            price_pct=self.config.mesh.price_pct,
        )
        patience = cfg.claim_patience_s if task.claim_patience_s is None else task.claim_patience_s
        offering = OfferAttempt(
            offer=offer,
            candidates=lambda: self._rested_last(
                self._affordable(task, task.candidates(frozenset(task.excluded)))
            ),
            max_candidates=cfg.max_candidates,
            patience_ms=min(patience, cfg.deadline_s) * 1000,
            wait=self._claim_wait,
            grant_window_ms=cfg.grant_window_ms,
            failed_before=len(task.excluded),
            stats=self.stats,
        )
        live.offering, live.outcome = offering, asyncio.get_running_loop().create_future()
        outcome = live.outcome
        self._apply(live, offering, offering.start(self._now_ms()))
        try:
            claim = await outcome
        finally:
            if not offering.done:  # the client went away while the attempt was offered
                self._apply(live, offering, offering.cancel())
            if live.wake is not None:
                live.wake.cancel()
            task.prices.update(offering.prices)
        self.stats["grants"] += 1
        return claim

    def _apply(self, live: _Live, offering: OfferAttempt, actions: list[OfferAction]) -> None:
        """Carry out what the attempt's state machine asks."""
        outcome = live.outcome
        for action in actions:
            if isinstance(action, SendOffer):
                self._spawn(self._ask(live, offering, action))
            elif isinstance(action, SendClose):
                # Advisory (a late claim is told ``closed``), so skipped when backlogged.
                if len(self._background) <= _MAX_BACKGROUND:
                    body = action.notice.as_dict()
                    self._spawn(self._post_quietly(action.node_id, MessageKind.CLOSE, body))
            elif isinstance(action, Wake):
                if live.wake is not None:
                    live.wake.cancel()
                loop = asyncio.get_running_loop()
                delay_s = max(0.0, action.at_ms / 1000 - loop.time())
                live.wake = loop.call_later(delay_s, self._wake, live, offering)
            elif isinstance(action, Granted):
                if outcome is not None and not outcome.done():
                    outcome.set_result(action.claim)
            elif isinstance(action, NoClaim):
                log.info("task %s attempt %d: %s (%d peers offered)", offering.offer.task_id,
                         offering.offer.attempt, action.code, len(offering.answers))  # fmt: skip
                if outcome is not None and not outcome.done():
                    outcome.set_exception(BackendUnavailableError(action.message))

    def _rest(self, node_id: str, seconds: float) -> None:
        """Leave a peer that shed an offer alone for as long as it asked (at most 30 s)."""
        now = asyncio.get_running_loop().time()
        if len(self._resting) >= _MAX_RESTING:
            self._resting = {n: t for n, t in self._resting.items() if t > now}
        self._resting[node_id] = now + min(max(0.0, seconds), MAX_REST_S)

    def _rested_last(self, fits: list[Fit]) -> list[Fit]:
        """The ranking with the peers still resting moved to its end (in their order): they
        are offered only once everyone else was, never dropped, so a mesh that is all
        busy is still told so."""
        if not self._resting:
            return fits
        now = asyncio.get_running_loop().time()
        resting = self._resting
        return sorted(fits, key=lambda fit: resting.get(fit.node_id, 0.0) > now)

    def _wake(self, live: _Live, offering: OfferAttempt) -> None:
        live.wake = None
        self._apply(live, offering, offering.on_timer(self._now_ms()))

    async def _ask(self, live: _Live, offering: OfferAttempt, action: SendOffer) -> None:
        """Offer to one candidate; feed its answer (``considering``, or why it will not
        claim) to the attempt."""
        try:
            answer = await self.transport.post(
                action.node_id, MessageKind.OFFER, action.offer.as_dict()
            )
            result = str(answer.get("result", ""))
        except PeerTransportError as exc:
            log.debug("offer to %s: %s", action.node_id, exc)
            result = exc.code
            if exc.retry_after_s is not None:
                self._rest(action.node_id, exc.retry_after_s)
        self._apply(live, offering, offering.on_answer(action.node_id, result, self._now_ms()))

    async def _attempt(
        self,
        task: RemoteTask,
        deadline_ms: int,
        persisted: asyncio.Future[None],
        admitted: bool,
    ) -> AsyncIterator[Delta]:
        worker = task.worker
        assert worker is not None
        key = self.peer_key(worker)
        if key is None:
            raise _AttemptFailedError("the worker's key is unknown")
        stream_key = new_stream_key()
        plaintext = encode_payload(_remaining(task), stream_key, "".join(task.partial))
        try:
            sealed = seal(key, task.task_id, plaintext)
        except PayloadError as exc:
            raise _AttemptFailedError(str(exc)) from None
        lease_ms = self.config.tasks.lease_ms
        grant = Grant(task.task_id, task.attempt, worker, lease_ms, deadline_ms,
                      base64.b64encode(sealed).decode())  # fmt: skip
        box = StreamBox(stream_key, task.task_id, task.attempt)
        try:
            await asyncio.shield(self._hold(task))  # durable before anything runs anywhere
        except StorageError as exc:
            raise BackendUnavailableError(f"cannot hold the task's credits: {exc}") from None
        started = time.monotonic()
        watch = RunWatch(lease_ms, self._now_ms())
        try:
            async with self.transport.stream(worker, MessageKind.RUN, grant.as_dict()) as lines:
                while True:
                    silence_s = max(0.0, (watch.expires_ms() - self._now_ms()) / 1000)
                    try:
                        raw = await asyncio.wait_for(anext(lines), silence_s)
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        raise _AttemptFailedError(
                            f"no word from the worker for {lease_ms} ms"
                        ) from None
                    try:
                        event = decode_event(box.open(base64.b64decode(raw, validate=True)))
                    except (ValueError, PayloadError, InferenceError) as exc:
                        raise _AttemptFailedError(f"a bad event from the worker: {exc}") from None
                    verdict = watch.on_event(event["t"], event.get("code"), self._now_ms())
                    if verdict is Verdict.ADMITTED:
                        await persisted
                        if not admitted:
                            yield Delta()
                    elif verdict is Verdict.OUTPUT:
                        task.partial.append(event["text"])
                        yield Delta(text=event["text"], tool_calls=event["calls"])
                    elif verdict is Verdict.FINISHED:
                        text = event.get("text", "")
                        task.partial.append(text)
                        task.output_tokens = event["completion_tokens"] + task.earlier_tokens
                        usage = Usage(event["prompt_tokens"], task.output_tokens)
                        wall_ms = int((time.monotonic() - started) * 1000)
                        self._spawn(self._receipt(task, event, wall_ms))
                        yield Delta(text=text, finish_reason=event["finish"], usage=usage,
                                    tool_calls=event["calls"])  # fmt: skip
                        return
                    elif verdict is Verdict.RETRY:
                        raise _AttemptFailedError(f"{event['code']}: {event['message']}")
                    elif verdict is Verdict.FATAL:
                        raise error_of(event["code"], event["message"])
        except PeerTransportError as exc:
            if not exc.reachable or exc.code in UNAVAILABLE | {"not_claimed", "expired"}:
                raise _AttemptFailedError(str(exc)) from None
            raise _AttemptFailedError(f"the worker refused the grant: {exc.code}: {exc}") from None
        finally:
            task.earlier_tokens += watch.tokens

    async def _receipt(self, task: RemoteTask, end: dict[str, Any], wall_ms: int) -> None:
        worker = task.worker
        assert worker is not None
        fit = task.fits.get(worker, Fit(worker, 0, False, False))
        async with self.ledger.payer(worker):  # totals to one worker go up one receipt at a time
            price = price_mc(end["prompt_tokens"], end["completion_tokens"], fit.size_class,
                             task.prices.get(worker, fit.price_pct))  # fmt: skip
            body = {
                "task_id": task.task_id,
                "attempt": task.attempt,
                "origin": self.identity.node_id,
                "worker": worker,
                "model": task.request.model,
                "model_digest": end["model_digest"],
                "prompt_tokens": end["prompt_tokens"],
                "output_tokens": end["completion_tokens"],
                "wall_ms": wall_ms,
                "price_pct": task.prices.get(worker, 100),
                "finished_ms": self.clock.now_ms(),
                "price": price,
                "total": self.ledger.spent_to(worker) + price,
            }
            origin_sig = sign_receipt(self.identity, body)
            try:
                # Kept and paid (the hold released, the price spent) before it is sent.
                await self.events.record(ReceiptSigned("origin", body, origin_sig, ""))
            except (StorageError, LedgerError) as exc:
                log.error("task %s: could not keep and pay its receipt: %s", task.task_id, exc)
                return
        # Sent again later, until the worker answers for good, if this answer is lost.
        await self.receipts.send(body, origin_sig)

    async def _finish(self, task: RemoteTask, persisted: asyncio.Future[None]) -> None:
        live = self._live.pop(task.task_id, None)
        claims = live.claims if live else 0
        if task.state in ("offered", "running"):
            task.state = "failed" if task.error else "cancelled"
        if task.state == "cancelled" and task.worker is not None:
            self._notify(task.worker, MessageKind.CANCEL, task)
        self.stats[task.state] = self.stats.get(task.state, 0) + 1
        self.events.publish(TaskFinished(task.task_id, task.state))
        if task.state != "done":
            try:
                await self.ledger.release(task.task_id)
            except (StorageError, LedgerError) as exc:
                log.error("task %s: could not release its hold: %s", task.task_id, exc)
        now = self.clock.now_ms()
        output = task.output_tokens or task.earlier_tokens
        try:
            await persisted
            await self.database.run(
                lambda c: store.finish_task(c, task.task_id, task.state, now, worker=task.worker,
                                            attempts=task.attempt, claims=claims,
                                            output_tokens=output, error=task.error)
            )  # fmt: skip
        except StorageError as exc:
            log.error("task %s: could not record its end: %s", task.task_id, exc)

    async def start(self) -> None:
        """Send again the receipts a previous run left waiting for a countersignature."""
        try:
            waiting = await self.receipts.resume()
        except StorageError as exc:
            log.error("could not read the receipts waiting for a countersignature: %s", exc)
            return
        if waiting:
            log.info("%d receipt(s) still wait for their worker's countersignature: sending "
                     "them again", waiting)  # fmt: skip

    async def aclose(self) -> None:
        """Wait briefly for receipts in flight, then cancel what remains (receipts still
        waiting for a countersignature are sent again by the next run)."""
        await self.receipts.aclose()
        if self._background:
            await asyncio.wait(self._background, timeout=2)
        for job in list(self._background):
            job.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._background, return_exceptions=True)
