"""An in-memory mesh for the task protocol: real origins and workers in one event loop.

:class:`Mesh` joins N :class:`~edgecoder.tasks.worker.Worker` s and M
:class:`~edgecoder.tasks.origin.Origin` s, each with its own identity and database, by a
:class:`Transport` whose messages are calls: the same ``post``/``stream`` of a
:class:`~edgecoder.tasks.transport.MessageKind` to a node id as the HTTP adapter, with
refusals and lost messages raised as the same
:class:`~edgecoder.errors.PeerTransportError`.

Each node has :class:`Switches` a test flips to make it misbehave: unreachable, shedding
offers with a Retry-After, slow or jittery, stalling (it stops sending without closing
the stream), dying mid-stream, forgetting its claims, lying in its token counts, its wall
clock skewed. Each worker's backend follows a :class:`Script` (reply, tokens, delays, a
queue, errors by code). The mesh counts messages by kind and runs by (task, attempt),
records every :class:`Generation`, and logs every :class:`Message` with its body, its
answer and the result lines it carried, so a test can say what crossed the network.

Wall time comes from one :class:`MeshClock` that a test can move forward (each node reads
it through its skew); timers run on the event loop's clock, so leases and offer timeouts
stay short by configuration, not by faking time. :meth:`Mesh.until` waits on the mesh's
own events (messages, lines, generations, database writes), never on a sleep.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import random
import re
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edgecoder.config import Config, TasksConfig
from edgecoder.errors import PeerTransportError, ProtocolError
from edgecoder.events import EventHub
from edgecoder.inference.types import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    Delta,
    SamplingParams,
    Usage,
)
from edgecoder.ledger.book import Ledger, Posting
from edgecoder.ledger.entries import TREASURY
from edgecoder.ledger.keeper import LedgerKeeper
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.payloads import open_sealed
from edgecoder.security.stream_box import StreamBox
from edgecoder.storage import ledger_rows
from edgecoder.storage import tasks as store
from edgecoder.storage.database import Database
from edgecoder.storage.receipt_keeper import ReceiptKeeper
from edgecoder.storage.task_rows import RunRow, TaskRow
from edgecoder.tasks.codec import decode_payload, encode_event
from edgecoder.tasks.errors import error_of
from edgecoder.tasks.fitness import Fit
from edgecoder.tasks.messages import Grant, parse_claim, parse_grant, parse_notice, parse_offer
from edgecoder.tasks.origin import Origin, RemoteTask
from edgecoder.tasks.transport import MessageKind
from edgecoder.tasks.worker import Worker, WorkerHost
from tests.adverts import advert, model

__all__ = (
    "ADVERT",
    "ALLOWANCE",
    "MODEL",
    "Generation",
    "Mesh",
    "MeshClock",
    "Message",
    "Script",
    "Switches",
    "Transport",
    "collect",
    "config",
    "funded_ledger",
    "remote_task",
    "run_one",
)

ALLOWANCE = 10**9
"""Each origin's allowance (mc): enough that no test task is refused for credits."""
_VOUCH = "0" * 64

T = TypeVar("T")

MODEL = "m"
ADVERT = advert(model(MODEL), prefill_tps=1000)
"""Every worker's advert: one loaded model, idle."""
EPOCH_MS = 1_700_000_000_000
"""Where the mesh's wall clock starts (any fixed instant: nothing here reads the real one)."""
_WORDS = re.compile(r"\s*\S+")


def config(**tasks: Any) -> Config:
    """A node's configuration: fast claim timings and short timeouts, ``tasks`` changed.

    A receipt whose countersignature was lost is sent again only when a test shortens
    ``receipt_retry_min_ms``: the others count the receipts sent.
    """
    base = {"claim_delay_max_ms": 40, "claim_jitter_ms": 5, "claim_stagger_ms": 10,
            "offer_timeout_ms": 100, "lease_ms": 2000,
            "receipt_retry_min_ms": 600_000}  # fmt: skip
    return Config(tasks=TasksConfig(**{**base, **tasks}))


# -- time -------------------------------------------------------------------------------


class MeshClock:
    """The mesh's wall clock: it runs with the monotonic clock from :data:`EPOCH_MS`, and a
    test moves it forward with :meth:`advance` (a deadline passes, a lease ends)."""

    def __init__(self, start_ms: int = EPOCH_MS) -> None:
        self._start_ms = start_ms
        self._started = time.monotonic()
        self.advanced_ms = 0

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch, as the mesh has it."""
        return self._start_ms + self.advanced_ms + int((time.monotonic() - self._started) * 1000)

    def monotonic(self) -> float:
        """Seconds on the real monotonic clock (a wall-clock jump does not move it)."""
        return time.monotonic()

    def advance(self, ms: int) -> None:
        """Move wall time forward by ``ms`` for every node."""
        self.advanced_ms += ms


class _NodeClock:
    """One node's view of the mesh's wall clock: ahead by its switches' ``skew_ms``."""

    def __init__(self, base: MeshClock, switches: Switches) -> None:
        self.base = base
        self.switches = switches

    def now_ms(self) -> int:
        return self.base.now_ms() + self.switches.skew_ms

    def monotonic(self) -> float:
        return self.base.monotonic()


# -- behaviour --------------------------------------------------------------------------


@dataclass
class Script:
    """What a worker's backend does with each generation it is given.

    It waits for ``queue`` (a busy backend's queue) and ``admit_delay_s`` (the prompt's
    prefill), admits the request (an empty ``Delta()``), says ``reply`` word by word (each
    word one token; a failed-over request continues the reply from the text already
    sent, so the client sees it once), pausing ``word_delay_s`` before each word and,
    with ``hold`` set, waiting for it before every word after the first; then ends with
    the usage (``prompt_tokens`` in, the words said out; ``length`` when ``max_tokens``
    cut it). With ``fail`` set it raises the error of that code
    (:func:`~edgecoder.tasks.errors.error_of`): before admission, or after
    ``fail_after`` words.
    """

    reply: str = "ok"
    prompt_tokens: int = 3
    word_delay_s: float = 0.0
    admit_delay_s: float = 0.0
    queue: asyncio.Event | None = None
    hold: asyncio.Event | None = None
    fail: str | None = None
    fail_after: int | None = None


@dataclass
class Switches:
    """How one node misbehaves; a test flips these at any time."""

    unreachable: bool = False
    """Messages to and from it are lost (the sender sees a timeout)."""
    shed_retry_after_s: float | None = None
    """It sheds offers as ``overloaded``, asking to be left alone this long."""
    delay_s: float = 0.0
    """Added to every hop to or from it."""
    jitter_s: float = 0.0
    """Up to this much more, at random, on every hop to or from it."""
    stall_after: int | None = None
    """Result lines it sends before it goes silent with its stream open (a stopped
    process: its generation waits too)."""
    die_after: int | None = None
    """Result lines it sends before it dies: its generation stops, the stream breaks and it
    is unreachable from then on."""
    forget_claims: bool = False
    """It forgets its claims before a grant arrives (a restart): grants are ``not_claimed``."""
    lie_tokens: int = 0
    """Added to the completion tokens its end event reports (its own record keeps the
    truth)."""
    skew_ms: int = 0
    """How far its wall clock is ahead of the mesh's."""
    lose_receipts: int = 0
    """Receipts sent to it that are lost on the way (each one lost counts this down)."""
    script: Script = field(default_factory=Script)
    """What its backend does (workers)."""


@dataclass
class Generation:
    """One generation a worker's backend was given."""

    worker: str
    prompt: str
    """The request's last message (the prompt, for a completion)."""
    continue_from: str
    words: list[str] = field(default_factory=list)
    state: str = "queued"
    """``queued``, ``running``, then ``done``, ``failed`` or ``cancelled`` (closed early)."""

    @property
    def text(self) -> str:
        """What it said."""
        return "".join(self.words)


@dataclass
class Message:
    """One message sent in the mesh, as the sender sent it, and what became of it."""

    sender: str
    recipient: str
    kind: MessageKind
    body: dict[str, Any]
    answer: dict[str, Any] | None = None
    refused: str | None = None
    """The code it was refused with, or ``unreachable`` when it was lost."""
    lines: list[bytes] = field(default_factory=list)
    """A ``run``'s result lines, as they crossed the network."""


# -- the mesh ---------------------------------------------------------------------------


class _WatchedDatabase(Database):
    """A node database that tells the mesh after every call (so waits can re-check)."""

    changed: Callable[[], None] = staticmethod(lambda: None)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await super().run(fn)
        finally:
            self.changed()


class Mesh:
    """Nodes by id, a :class:`Transport` for each, and a record of what happened."""

    def __init__(self, clock: MeshClock | None = None, seed: int = 7) -> None:
        self.clock = clock or MeshClock()
        self.origins: dict[str, Origin] = {}
        self.workers: dict[str, Worker] = {}
        self.identities: dict[str, NodeIdentity] = {}
        self.databases: dict[str, Database] = {}
        self.switches: dict[str, Switches] = {}
        self.delay_s = 0.0
        """Every hop's delay."""
        self.jitter_s = 0.0
        """Up to this much more on every hop, at random."""
        self.messages: list[Message] = []
        self.sent: Counter[MessageKind] = Counter()
        self.executions: Counter[str] = Counter()
        """Generations admitted, by prompt."""
        self.runs: Counter[tuple[str, int]] = Counter()
        """Grants accepted by a worker, by (task id, attempt)."""
        self.generations: list[Generation] = []
        self.on_run: list[Callable[[str, Grant], None]] = []
        self.events: dict[str, EventHub] = {}
        """Each node's event hub (its receipts are kept in its database and its ledger)."""
        self.ledgers: dict[str, Ledger] = {}
        """Each node's chain: origins start with :data:`ALLOWANCE`, workers with nothing."""
        self.configs: dict[str, Config] = {}
        self.allowances: dict[str, int] = {}
        self._sabotaged: set[str] = set()
        """Called with (worker, grant) as a grant reaches a worker, before it is checked."""
        self.rng = random.Random(seed)
        self._changed = asyncio.Event()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        tmp_path: Path,
        workers: int,
        origins: int = 1,
        *,
        script: Script | None = None,
        clock: MeshClock | None = None,
        seed: int = 7,
        allowance: int = ALLOWANCE,
        **tasks: Any,
    ) -> AsyncIterator[Mesh]:
        """A running mesh of ``workers`` workers (each following a copy of ``script``) and
        ``origins`` origins (each granted ``allowance`` mc) configured with :func:`config`
        (``tasks`` changed); closed on exit."""
        mesh = cls(clock, seed)
        cfg = config(**tasks)
        try:
            for i in range(workers + origins):
                await mesh._add(tmp_path / f"node{i}", cfg, i, worker=i < workers, script=script,
                                allowance=allowance)  # fmt: skip
            yield mesh
        finally:
            await mesh.aclose()

    async def _add(
        self,
        data_dir: Path,
        cfg: Config,
        i: int,
        *,
        worker: bool,
        script: Script | None,
        allowance: int = 0,
    ) -> None:
        identity = NodeIdentity.generate()
        node_id = identity.node_id
        switches = Switches(script=Script(**vars(script)) if script else Script())
        self.identities[node_id] = identity
        self.switches[node_id] = switches
        await asyncio.to_thread(data_dir.mkdir)
        database = await _WatchedDatabase.open(data_dir)
        database.changed = self.notify  # type: ignore[method-assign]
        self.databases[node_id] = database
        clock = _NodeClock(self.clock, switches)
        self.configs[node_id] = cfg
        if worker:
            events = await self._hub(node_id, database, clock, 0)

            def execute(request: ChatRequest | CompletionRequest) -> AsyncIterator[Delta]:
                return self._execute(node_id, request)

            host = WorkerHost(advert=lambda: ADVERT, in_flight=lambda: 0, execute=execute,
                              peer_key=self.key)  # fmt: skip
            self.workers[node_id] = Worker(identity=identity, config=cfg, clock=clock,
                                           database=database, transport=Transport(self, node_id),
                                           events=events, host=host,
                                           rng=random.Random(i))  # fmt: skip
        else:
            await self._origin(node_id, allowance)

    async def _hub(self, node_id: str, database: Database, clock: Any, allowance: int) -> EventHub:
        """A node's event hub with its receipt store and its ledger as keepers (origins pay;
        workers start with nothing and earn)."""
        events = EventHub()
        ReceiptKeeper(database, clock).attach(events)
        identity = self.identities[node_id]
        if allowance and not await self.query(
            node_id, lambda c: ledger_rows.entries_of(c, node_id)
        ):
            ledger = await funded_ledger(identity, database, clock, events, allowance)
        else:  # a restart: the chain is there
            vouched = {_VOUCH: allowance}
            ledger = Ledger(identity, database, clock, events,
                            vouches=lambda ref, node: vouched.get(ref))  # fmt: skip
            await ledger.open()
        LedgerKeeper(ledger).attach(events)
        self.ledgers[node_id] = ledger
        events.subscribe(lambda event: self.notify())
        self.events[node_id] = events
        return events

    async def _origin(self, node_id: str, allowance: int) -> Origin:
        database = self.databases[node_id]
        clock = _NodeClock(self.clock, self.switches[node_id])
        events = await self._hub(node_id, database, clock, allowance)
        self.allowances[node_id] = allowance
        origin = Origin(identity=self.identities[node_id], config=self.configs[node_id],
                        clock=clock, database=database, transport=Transport(self, node_id),
                        events=events, peer_key=self.key,
                        ledger=self.ledgers[node_id])  # fmt: skip
        self.origins[node_id] = origin
        return origin

    async def restart_origin(self, node_id: str) -> Origin:
        """Stop an origin and start it again over its database (its chain, its receipts),
        as a new process would: what it kept is all it has."""
        await self.origins[node_id].aclose()
        origin = await self._origin(node_id, self.allowances[node_id])
        await self.ledgers[node_id].release_all()  # as the daemon does at start
        await origin.start()
        return origin

    async def aclose(self) -> None:
        """Stop every node and close its database."""
        for worker in self.workers.values():
            await worker.aclose()
        for origin in self.origins.values():
            await origin.aclose()
        for database in self.databases.values():
            await database.close()

    # -- looking at it --------------------------------------------------------------------

    @property
    def origin(self) -> Origin:
        """The first origin."""
        return next(iter(self.origins.values()))

    def key(self, node_id: str) -> bytes | None:
        """A node's public key (what its signed peer record would say)."""
        identity = self.identities.get(node_id)
        return identity.public_key if identity is not None else None

    def sent_to(
        self, kind: MessageKind, recipient: str | None = None, sender: str | None = None
    ) -> list[Message]:
        """The messages of ``kind`` sent (to ``recipient``, by ``sender``)."""
        return [m for m in self.messages if m.kind == kind
                and recipient in (None, m.recipient) and sender in (None, m.sender)]  # fmt: skip

    def generations_of(self, prompt: str) -> list[Generation]:
        """The generations given ``prompt``, in order."""
        return [g for g in self.generations if g.prompt == prompt]

    async def query(self, node_id: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Read a node's database (without waking :meth:`until`)."""
        return await Database.run(self.databases[node_id], fn)

    async def runs_of(self, node_id: str) -> list[RunRow]:
        """The runs a worker recorded, newest first."""
        return await self.query(node_id, lambda c: store.recent_runs(c, 10_000))

    async def tasks_of(self, node_id: str) -> list[TaskRow]:
        """The tasks an origin recorded, newest first."""
        return await self.query(node_id, lambda c: store.recent_tasks(c, 10_000))

    async def receipt_of(self, node_id: str, task_id: str) -> dict[str, Any] | None:
        """The receipt a node keeps for a task."""
        return await self.query(node_id, lambda c: store.get_receipt(c, task_id))

    # -- waiting --------------------------------------------------------------------------

    def notify(self) -> None:
        """Something happened: wake every :meth:`until`."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(
        self,
        check: Callable[[], bool | Awaitable[bool]],
        what: str = "condition",
        limit_s: float = 30.0,
    ) -> None:
        """Wait until ``check`` holds, checking again whenever something happens in the mesh.

        ``limit_s`` bounds a hang; it is never a statement about speed.

        :raises AssertionError: ``what`` did not hold within ``limit_s`` seconds.
        """
        try:
            async with asyncio.timeout(limit_s):
                while True:
                    changed = self._changed
                    result = check()
                    if inspect.isawaitable(result):
                        result = await result
                    if result:
                        return
                    await changed.wait()
        except TimeoutError:
            raise AssertionError(f"{what} not met within {limit_s}s") from None

    # -- faults ---------------------------------------------------------------------------

    def sabotage(self, attempt: int = 1, times: int = 1, **changes: Any) -> list[str]:
        """Change the :class:`Switches` (``changes``) of the next ``times`` workers that
        receive a grant for ``attempt``, as the grant arrives; the list fills with them.

        A worker is sabotaged once: later calls pick other workers."""
        hit: list[str] = []

        def hook(node_id: str, grant: Grant) -> None:
            if grant.attempt == attempt and len(hit) < times and node_id not in self._sabotaged:
                self._sabotaged.add(node_id)
                hit.append(node_id)
                for name, value in changes.items():
                    setattr(self.switches[node_id], name, value)

        self.on_run.append(hook)
        return hit

    async def hop(self, sender: str, recipient: str) -> None:
        """One message's trip across the network."""
        delay = self.delay_s + self.rng.uniform(0, self.jitter_s)
        for node_id in (sender, recipient):
            switches = self.switches.get(node_id)
            if switches is not None:
                delay += switches.delay_s + self.rng.uniform(0, switches.jitter_s)
        await asyncio.sleep(delay)

    def reach(self, sender: str, recipient: str) -> None:
        """:raises PeerTransportError: the message between these nodes is lost."""
        if recipient not in self.switches:
            raise PeerTransportError("unknown_peer", f"no address for {recipient}", reachable=False)
        if self.switches[recipient].unreachable or self.switches[sender].unreachable:
            raise PeerTransportError("unreachable", f"{recipient}: timed out", reachable=False)

    # -- the backend ----------------------------------------------------------------------

    async def _execute(
        self, node_id: str, request: ChatRequest | CompletionRequest
    ) -> AsyncIterator[Delta]:
        script = self.switches[node_id].script
        if isinstance(request, ChatRequest):
            prompt, cont = request.messages[-1].content, request.continue_from
        else:
            prompt, cont = request.prompt, ""
        generation = Generation(node_id, prompt, cont)
        self.generations.append(generation)
        self.notify()
        try:
            if script.queue is not None:
                await script.queue.wait()
            if script.admit_delay_s:
                await asyncio.sleep(script.admit_delay_s)
            if script.fail is not None and script.fail_after is None:
                generation.state = "failed"
                raise error_of(script.fail, "the script refuses")
            yield Delta()
            generation.state = "running"
            self.executions[prompt] += 1
            self.notify()
            rest = script.reply[len(cont) :] if script.reply.startswith(cont) else script.reply
            words = _WORDS.findall(rest)
            budget = request.sampling.max_tokens
            finish: Any = "stop"
            for i, word in enumerate([*words, None]):
                if script.fail is not None and i == script.fail_after:
                    generation.state = "failed"
                    raise error_of(script.fail, "the script fails")
                if word is None:
                    break
                if budget is not None and i >= budget:
                    finish = "length"
                    break
                if i and script.hold is not None:
                    await script.hold.wait()
                if script.word_delay_s:
                    await asyncio.sleep(script.word_delay_s)
                generation.words.append(word)
                self.notify()
                yield Delta(text=word)
            generation.state = "done"
            yield Delta(
                finish_reason=finish, usage=Usage(script.prompt_tokens, len(generation.words))
            )
        except (GeneratorExit, asyncio.CancelledError):
            if generation.state in ("queued", "running"):
                generation.state = "cancelled"
            raise
        finally:
            self.notify()

    # -- a worker's stream, as it crosses the network -------------------------------------

    async def relay(
        self, node_id: str, origin: str, grant: Grant, lines: AsyncIterator[bytes], log: Message
    ) -> AsyncIterator[bytes]:
        """A worker's result lines as the origin receives them, its switches applied (the
        lines follow the exchange's first hop without delays of their own, as a stream's
        do)."""
        switches = self.switches[node_id]
        rewrite = self._liar(node_id, grant, switches.lie_tokens) if switches.lie_tokens else None
        sent = 0
        while True:
            if switches.stall_after is not None and sent >= switches.stall_after:
                await asyncio.Event().wait()  # silent, the exchange left open
            if switches.die_after is not None and sent >= switches.die_after:
                switches.unreachable = True
                await lines.aclose()  # type: ignore[attr-defined]
                self.notify()
                raise PeerTransportError("unreachable", f"{node_id} died", reachable=False)
            try:
                line = (await anext(lines)).strip()
            except StopAsyncIteration:
                return
            if rewrite is not None:
                line = rewrite(line)
            self.reach(node_id, origin)  # pipelined behind the first hop: no delay of its own
            log.lines.append(line)
            sent += 1
            self.notify()
            yield line

    def _liar(self, node_id: str, grant: Grant, extra: int) -> Callable[[bytes], bytes]:
        """Rewrites a worker's sealed lines so its end event reports ``extra`` more tokens."""
        sealed = base64.b64decode(grant.payload)
        payload = decode_payload(open_sealed(self.identities[node_id], grant.task_id, sealed))
        inbox = StreamBox(payload.key, grant.task_id, grant.attempt)
        outbox = StreamBox(payload.key, grant.task_id, grant.attempt)

        def rewrite(line: bytes) -> bytes:
            event = json.loads(inbox.open(base64.b64decode(line)))
            if event["t"] == "end":
                event["completion_tokens"] += extra
            return base64.b64encode(outbox.seal(encode_event(event)))

        return rewrite


class Transport:
    """One node's :class:`~edgecoder.tasks.transport.TaskTransport` into a :class:`Mesh`."""

    def __init__(self, mesh: Mesh, sender: str) -> None:
        self.mesh = mesh
        self.sender = sender

    def _log(self, node_id: str, kind: MessageKind, body: dict[str, Any]) -> Message:
        message = Message(self.sender, node_id, kind, body)
        self.mesh.messages.append(message)
        self.mesh.sent[kind] += 1
        self.mesh.notify()
        return message

    async def post(self, node_id: str, kind: MessageKind, body: dict[str, Any]) -> dict[str, Any]:
        """Deliver one message and return the recipient's answer.

        :raises PeerTransportError: lost (``reachable`` False) or refused by the recipient.
        """
        mesh = self.mesh
        message = self._log(node_id, kind, body)
        try:
            await mesh.hop(self.sender, node_id)
            mesh.reach(self.sender, node_id)
            switches = mesh.switches[node_id]
            if kind == MessageKind.RECEIPT and switches.lose_receipts > 0:
                switches.lose_receipts -= 1
                raise PeerTransportError("unreachable", f"{node_id}: timed out", reachable=False)
            try:
                answer = await self._deliver(node_id, kind, body)
            except ProtocolError as exc:
                raise PeerTransportError(exc.code, str(exc), reachable=True) from None
            await mesh.hop(node_id, self.sender)
            mesh.reach(node_id, self.sender)
        except PeerTransportError as exc:
            message.refused = exc.code
            mesh.notify()
            raise
        message.answer = answer
        mesh.notify()
        return answer

    async def _deliver(
        self, node_id: str, kind: MessageKind, body: dict[str, Any]
    ) -> dict[str, Any]:
        mesh, sender = self.mesh, self.sender
        if kind == MessageKind.CLAIM:
            return {"result": mesh.origins[node_id].on_claim(parse_claim(body, sender))}
        worker = mesh.workers[node_id]
        if kind == MessageKind.OFFER:
            shed = mesh.switches[node_id].shed_retry_after_s
            if shed is not None:
                raise PeerTransportError(
                    "overloaded", "too busy", reachable=True, retry_after_s=shed
                )
            return {"result": worker.consider(parse_offer(body, sender))}
        if kind in (MessageKind.CLOSE, MessageKind.CANCEL):
            notice = parse_notice(body)
            stop = worker.close if kind == MessageKind.CLOSE else worker.cancel
            return {"stopped": stop(notice.task_id, notice.attempt)}
        if kind == MessageKind.RECEIPT:
            return {"worker_sig": await worker.countersign(body, sender)}
        raise AssertionError(f"{kind} is not posted")

    @contextlib.asynccontextmanager
    async def stream(
        self, node_id: str, kind: MessageKind, body: dict[str, Any]
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Deliver a grant; the worker's result lines as they arrive.

        :raises PeerTransportError: on entry, lost or refused; while streaming, the
            exchange broke (the worker died or was cut off).
        """
        mesh = self.mesh
        assert kind == MessageKind.RUN, kind
        message = self._log(node_id, kind, body)
        try:
            await mesh.hop(self.sender, node_id)
            mesh.reach(self.sender, node_id)
            try:
                grant = parse_grant(body, node_id)
                for hook in mesh.on_run:
                    hook(node_id, grant)
                worker = mesh.workers[node_id]
                if mesh.switches[node_id].forget_claims:
                    worker.close(grant.task_id, grant.attempt)
                lines = await worker.accept(grant, self.sender)
            except ProtocolError as exc:
                raise PeerTransportError(exc.code, str(exc), reachable=True) from None
        except PeerTransportError as exc:
            message.refused = exc.code
            mesh.notify()
            raise
        mesh.runs[(grant.task_id, grant.attempt)] += 1
        mesh.notify()
        relayed = mesh.relay(node_id, self.sender, grant, lines, message)
        try:
            yield relayed
        finally:
            await relayed.aclose()  # type: ignore[attr-defined]
            await lines.aclose()  # type: ignore[attr-defined]


async def funded_ledger(
    identity: NodeIdentity, database: Database, clock: Any, events: EventHub, allowance: int
) -> Ledger:
    """A node's chain, opened, with ``allowance`` granted (none when 0)."""
    ledger = Ledger(identity, database, clock, events,
                    vouches=lambda ref, node: allowance if ref == _VOUCH else None)  # fmt: skip
    await ledger.open()
    if allowance:
        await ledger.append(Posting("allowance", allowance, TREASURY, _VOUCH))
    return ledger


# -- tasks ------------------------------------------------------------------------------


def remote_task(
    mesh: Mesh,
    content: str,
    *,
    max_tokens: int | None = None,
    ranking: list[str] | None = None,
) -> RemoteTask:
    """A chat task saying ``content``; its candidates are every worker not excluded, in
    ``ranking``'s order when given (else shuffled by the mesh's seed)."""
    request = ChatRequest(MODEL, (ChatMessage("user", content),), SamplingParams(max_tokens))

    def candidates(exclude: frozenset[str]) -> list[Fit]:
        if ranking is not None:
            ids = [node_id for node_id in ranking if node_id not in exclude]
        else:
            ids = sorted(set(mesh.workers) - exclude)
            mesh.rng.shuffle(ids)
        held = ADVERT.models[0]  # as the router reads every worker's advert
        return [Fit(node_id, 100, True, False, 100, held.size_class, held.context_length)
                for node_id in ids]  # fmt: skip

    return RemoteTask(request=request, prompt_tokens=3, candidates=candidates)


async def collect(origin: Origin, task: RemoteTask) -> list[Delta]:
    """Every delta the origin yields for ``task``."""
    return [delta async for delta in origin.run(task)]


async def run_one(origin: Origin, task: RemoteTask) -> str:
    """The text of ``task``'s answer."""
    return "".join(delta.text for delta in await collect(origin, task))
