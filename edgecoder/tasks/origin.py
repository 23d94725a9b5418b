"""The origin side of the claim-delay protocol: offer, grant once, relay, fail over, sign.

One task is one client request sent to the mesh. Each attempt offers it (no prompt) to
the fittest candidates, grants the first valid claim (:class:`AttemptArbiter`), seals the
request to the grantee alone, and relays the worker's sealed events to the client as
deltas. A worker that dies, stalls past the lease, breaks the stream or fails with a
retryable error ends the attempt: the next one excludes it and continues from the output
already sent. A client that goes away closes the stream, which cancels the worker's
generation; an explicit ``cancel`` notice follows. When the task ends the origin signs a
receipt and asks the worker to countersign it; both keep it.
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
    PayloadError,
    PeerTransportError,
    StorageError,
)
from edgecoder.inference.types import ChatRequest, CompletionRequest, Delta, Usage
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.payloads import seal
from edgecoder.security.stream_box import StreamBox, new_stream_key
from edgecoder.storage import tasks as store
from edgecoder.storage.database import Database
from edgecoder.tasks.arbiter import CLOSED, GRANTED, PENDING, AttemptArbiter
from edgecoder.tasks.codec import decode_event, encode_payload
from edgecoder.tasks.errors import RETRYABLE, error_of
from edgecoder.tasks.fitness import Fit
from edgecoder.tasks.messages import Claim, Grant, Notice, Offer, new_task_id
from edgecoder.tasks.receipts import sign_receipt, verify_signature
from edgecoder.tasks.transport import UNAVAILABLE, MessageKind, TaskTransport

__all__ = ("Origin", "RemoteTask")

log = logging.getLogger(__name__)

CLAIM_PATIENCE_S = 30.0
"""How long a task waits for any peer to claim it (busy or silent peers) before it is refused."""
_MAX_BACKGROUND = 512
"""Notices in flight beyond which ``close`` notices (advisory) are not sent."""
_BACKOFF_S = (0.25, 0.5, 1.0, 2.0)


class _AttemptFailedError(EdgeCoderError):
    """This attempt cannot finish; another worker may."""


@dataclass(slots=True)
class _Live:
    arbiter: AttemptArbiter | None = None
    granted: asyncio.Future[Claim] | None = None
    claims: int = 0
    claimers: set[str] = field(default_factory=set)
    """Nodes that claimed the open attempt (their answer told them how it went)."""


class _ClaimWait:
    """How long a round of offers waits for a claim: ``offer_timeout_ms`` while claims
    come quickly, longer when this node or its peers run behind (TCP's retransmission
    timer: smoothed first-claim time plus four deviations, at most 8 times the floor)."""

    def __init__(self, floor_ms: int) -> None:
        self.floor_ms = floor_ms
        self._mean: float | None = None
        self._dev = 0.0

    def observe(self, ms: float) -> None:
        if self._mean is None:
            self._mean, self._dev = ms, ms / 2
            return
        self._dev += (abs(ms - self._mean) - self._dev) / 4
        self._mean += (ms - self._mean) / 8

    def seconds(self) -> float:
        if self._mean is None:
            return self.floor_ms / 1000
        wait = min(max(self.floor_ms, self._mean + 4 * self._dev), 8 * self.floor_ms)
        return wait / 1000


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
    """How long to wait for a claim before giving up (None: :data:`CLAIM_PATIENCE_S`);
    shorter when the caller can run the request itself instead."""
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
    ) -> None:
        self.identity = identity
        self.config = config
        self.clock = clock
        self.database = database
        self.transport = transport
        self.peer_key = peer_key
        self._live: dict[str, _Live] = {}
        self.events: list[Callable[[str, str, str], None]] = []
        """Called with (``started``, task id, worker) and (``finished``, task id, state)."""
        self.assigned: Counter[str] = Counter()
        """How many of this node's attempts run on each worker now."""
        self._background: set[asyncio.Task[Any]] = set()
        self._claim_wait = _ClaimWait(config.tasks.offer_timeout_ms)
        self.stats = {"tasks": 0, "offers": 0, "declined": 0, "rounds": 0, "claims": 0,
                      "late_claims": 0, "grants": 0, "failovers": 0, "done": 0, "failed": 0,
                      "cancelled": 0}  # fmt: skip

    # -- claims (called by the mesh route) ------------------------------------------------

    def on_claim(self, claim: Claim) -> str:
        """Decide on a claim: ``granted`` (the grant follows), ``pending`` or ``closed``."""
        self.stats["claims"] += 1
        live = self._live.get(claim.task_id)
        if live is None:
            self.stats["late_claims"] += 1
            log.debug("late claim for finished task %s attempt %d from %s: dropped",
                      claim.task_id, claim.attempt, claim.worker)  # fmt: skip
            return CLOSED
        live.claims += 1
        live.claimers.add(claim.worker)
        arbiter, future = live.arbiter, live.granted
        if arbiter is None or future is None:
            return CLOSED
        decision = arbiter.claim(claim, self.clock.now_ms())
        if decision == GRANTED and not future.done():
            future.set_result(claim)
        elif decision == PENDING and arbiter.claims == 1:
            asyncio.get_running_loop().call_later(
                arbiter.window_ms / 1000, self._decide, arbiter, future
            )
        return decision

    @staticmethod
    def _decide(arbiter: AttemptArbiter, future: asyncio.Future[Claim]) -> None:
        granted = arbiter.decide()
        if granted is not None and not future.done():
            future.set_result(granted)

    # -- running a task -------------------------------------------------------------------

    async def run(self, task: RemoteTask) -> AsyncGenerator[Delta, None]:
        """The task's deltas: an admission marker once a worker admits it, then the output.

        :raises InferenceError: before admission, when no peer can run it or the error
            would happen anywhere (the prompt does not fit); after admission, when every
            attempt failed.
        """
        self.stats["tasks"] += 1
        self._live[task.task_id] = _Live()
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
                            self._emit("started", task.task_id, claim.worker)
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

    def _emit(self, kind: str, task_id: str, detail: str) -> None:
        for listener in self.events:
            try:
                listener(kind, task_id, detail)
            except Exception:
                log.exception("a task event listener failed")

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
        """Offer the attempt until one claim is granted.

        Rounds of offers widen the attempt down the ranking (the earlier candidates' late
        claims stay valid: one arbiter, one grant). A round ends when its wait passes or
        every candidate offered so far declined (busy, overloaded, unreachable); after a
        pass over every candidate, the next starts after a backoff.

        :raises InferenceError: no peer can run the task, or none claimed it within
            :data:`CLAIM_PATIENCE_S`.
        """
        cfg = self.config.tasks
        loop = asyncio.get_running_loop()
        live = self._live[task.task_id]
        arbiter = AttemptArbiter(task.task_id, task.attempt, frozenset(), cfg.grant_window_ms)
        live.arbiter, live.granted, live.claimers = arbiter, loop.create_future(), set()
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
        answers: dict[str, asyncio.Task[str]] = {}
        started = loop.time()
        patience = CLAIM_PATIENCE_S if task.claim_patience_s is None else task.claim_patience_s
        give_up = started + min(patience, cfg.deadline_s)
        asked: set[str] = set()  # in this pass over the candidates
        sent: dict[str, float] = {}  # when each candidate was last offered the attempt
        passes = 0
        claim: Claim | None = None
        try:
            while claim is None and loop.time() < give_up:
                fits = task.candidates(frozenset(task.excluded))
                if not fits:
                    raise BackendUnavailableError(
                        f"no peer can run model '{task.request.model}' for this request now"
                        + (f" ({len(task.excluded)} failed already)" if task.excluded else "")
                    )
                batch = [fit for fit in fits if fit.node_id not in asked][: cfg.max_candidates]
                if not batch:  # everyone was asked: give them a moment, then ask again
                    asked.clear()
                    passes += 1
                    pause = _BACKOFF_S[min(passes, len(_BACKOFF_S)) - 1]
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            asyncio.shield(live.granted), min(pause, give_up - loop.time())
                        )
                    if live.granted.done():
                        claim = live.granted.result()
                    continue
                asked.update(fit.node_id for fit in batch)
                self.stats["rounds"] += 1
                arbiter.widen(frozenset(fit.node_id for fit in batch))
                task.prices.update((fit.node_id, fit.price_pct) for fit in batch)
                for rank, fit in enumerate(batch):
                    body = replace(offer, rank=rank).as_dict()
                    earlier = answers.get(fit.node_id)
                    if earlier is not None:
                        self._adopt(earlier)
                    answers[fit.node_id] = asyncio.ensure_future(self._ask(fit.node_id, body))
                    sent[fit.node_id] = loop.time()
                self.stats["offers"] += len(batch)
                until = min(give_up, loop.time() + self._claim_wait.seconds())
                claim = await self._await_claim(live, answers, until)
            if claim is not None and claim.worker in sent:
                self._claim_wait.observe((loop.time() - sent[claim.worker]) * 1000)
        finally:
            arbiter.close()
            for job in answers.values():
                self._adopt(job)
            self._close_others(task, live, answers, claim.worker if claim else "")
        if claim is None:
            log.info("task %s attempt %d: no claim within %.1f s from %d peers",
                     task.task_id, task.attempt, loop.time() - started, len(answers))  # fmt: skip
            raise BackendUnavailableError(
                f"no peer took the task within {patience:.0f} s: the mesh is busy"
            )
        self.stats["grants"] += 1
        return claim

    async def _await_claim(
        self, live: _Live, answers: dict[str, asyncio.Task[str]], until: float
    ) -> Claim | None:
        """The granted claim, or None at ``until`` or once every offer was declined."""
        loop = asyncio.get_running_loop()
        granted = live.granted
        assert granted is not None
        while not granted.done():
            open_answers = {job for job in answers.values() if not job.done()}
            declined = all(job.done() and job.result() != "considering" for job in answers.values())
            remaining = until - loop.time()
            if declined or remaining <= 0:
                return None
            waiting: set[asyncio.Future[Any]] = {granted, *open_answers}
            await asyncio.wait(waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        return granted.result()

    async def _ask(self, node_id: str, body: dict[str, Any]) -> str:
        """Offer to one candidate; its answer (``considering``, or why it will not claim)."""
        try:
            answer = await self.transport.post(node_id, MessageKind.OFFER, body)
        except PeerTransportError as exc:
            log.debug("offer to %s: %s", node_id, exc)
            self.stats["declined"] += 1
            return exc.code
        result = str(answer.get("result", ""))
        if result != "considering":
            self.stats["declined"] += 1
        return result

    def _adopt(self, job: asyncio.Task[Any]) -> None:
        """Let an exchange still in flight finish in the background."""
        if not job.done():
            self._background.add(job)
            job.add_done_callback(self._background.discard)

    def _close_others(
        self, task: RemoteTask, live: _Live, answers: dict[str, asyncio.Task[str]], worker: str
    ) -> None:
        """Tell the candidates still weighing the attempt that it is taken, so they stay
        silent. Advisory (a late claim is told ``closed``), so skipped when backlogged."""
        if len(self._background) > _MAX_BACKGROUND:
            return
        closing = Notice(task.task_id, task.attempt).as_dict()
        for node_id, job in answers.items():
            if node_id == worker or node_id in live.claimers:
                continue
            if job.done() and job.result() != "considering":
                continue
            self._spawn(self._post_quietly(node_id, MessageKind.CLOSE, closing))

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
        started = time.monotonic()
        tokens = 0
        try:
            async with self.transport.stream(worker, MessageKind.RUN, grant.as_dict()) as lines:
                while True:
                    try:
                        raw = await asyncio.wait_for(anext(lines), lease_ms / 1000)
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
                    kind = event["t"]
                    if kind == "admit":
                        await persisted
                        if not admitted:
                            yield Delta()
                    elif kind == "text":
                        tokens += 1
                        task.partial.append(event["text"])
                        yield Delta(text=event["text"], tool_calls=event["calls"])
                    elif kind == "end":
                        text = event.get("text", "")
                        task.partial.append(text)
                        task.output_tokens = event["completion_tokens"] + task.earlier_tokens
                        usage = Usage(event["prompt_tokens"], task.output_tokens)
                        wall_ms = int((time.monotonic() - started) * 1000)
                        self._spawn(self._receipt(task, event, wall_ms))
                        yield Delta(text=text, finish_reason=event["finish"], usage=usage,
                                    tool_calls=event["calls"])  # fmt: skip
                        return
                    elif kind == "error":
                        if event["code"] in RETRYABLE:
                            raise _AttemptFailedError(f"{event['code']}: {event['message']}")
                        raise error_of(event["code"], event["message"])
        except PeerTransportError as exc:
            if not exc.reachable or exc.code in UNAVAILABLE | {"not_claimed", "expired"}:
                raise _AttemptFailedError(str(exc)) from None
            raise _AttemptFailedError(f"the worker refused the grant: {exc.code}: {exc}") from None
        finally:
            task.earlier_tokens += tokens

    async def _receipt(self, task: RemoteTask, end: dict[str, Any], wall_ms: int) -> None:
        worker = task.worker
        assert worker is not None
        key = self.peer_key(worker)
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
        }
        origin_sig = sign_receipt(self.identity, body)
        now = self.clock.now_ms()
        await self.database.run(
            lambda c: store.store_receipt(c, "origin", body, origin_sig, "", now)
        )
        try:
            answer = await self.transport.post(
                worker, MessageKind.RECEIPT, {"body": body, "origin_sig": origin_sig}
            )
        except PeerTransportError as exc:
            log.warning("task %s: the worker did not countersign the receipt: %s",
                        task.task_id, exc)  # fmt: skip
            return
        worker_sig = answer.get("worker_sig")
        if (
            not isinstance(worker_sig, str)
            or key is None
            or not verify_signature(key, body, worker_sig)
        ):
            log.warning("task %s: the worker's countersignature does not verify", task.task_id)
            return
        await self.database.run(
            lambda c: store.store_receipt(c, "origin", body, origin_sig, worker_sig, now)
        )

    async def _finish(self, task: RemoteTask, persisted: asyncio.Future[None]) -> None:
        live = self._live.pop(task.task_id, None)
        claims = live.claims if live else 0
        if task.state in ("offered", "running"):
            task.state = "failed" if task.error else "cancelled"
        if task.state == "cancelled" and task.worker is not None:
            self._notify(task.worker, MessageKind.CANCEL, task)
        self.stats[task.state] = self.stats.get(task.state, 0) + 1
        self._emit("finished", task.task_id, task.state)
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

    async def aclose(self) -> None:
        """Wait briefly for receipts in flight, then cancel what remains."""
        if self._background:
            await asyncio.wait(self._background, timeout=2)
        for job in list(self._background):
            job.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._background, return_exceptions=True)
