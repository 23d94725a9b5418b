"""What a running node announces: typed events, and the one hub they are published on.

The core publishes; D-Bus signals, the admin event stream and (later) the web UI and the
ledger subscribe. Nobody polls. Every event is a frozen dataclass with a stable ``kind``
and an ``as_json()`` for remote subscribers:

=====================  ===================================================================
``peer.state``         :class:`PeerStateChanged` — a member became alive, suspect, dead,
                       or was forgotten (``previous`` None: newly learnt)
``task.started``       :class:`TaskStarted` — this node's task was granted to a worker
``task.finished``      :class:`TaskFinished` — this node's task ended (done/failed/...)
``receipt.signed``     :class:`ReceiptSigned` — a receipt signed as origin or worker
``pull.progress``      :class:`PullProgress` — a model download moved on or ended
``properties.changed`` :class:`PropertiesChanged` — the D-Bus properties that changed
``ledger.balance``     :class:`BalanceChanged` — this node's credits after an append
``ledger.checkpoint``  :class:`CheckpointSealed` — a newer checkpoint was taken here
``peer.blacklisted``   :class:`Blacklisted` — a blacklist entry with verified evidence was
                       accepted (this node's own, or a peer's)
=====================  ===================================================================

Local subscribers (:meth:`EventHub.subscribe`) are called synchronously, in the
publisher's loop, in subscription order; publishing never blocks and never raises into
the publisher (a failing subscriber is logged once and stays subscribed). What must
outlive a crash has *keepers* (:meth:`EventHub.keep`: the receipt store, later the
ledger): the publisher awaits :meth:`EventHub.record`, which returns once every keeper
has kept the event (or raises the first keeper's failure, and nobody else hears of it),
so nothing is acknowledged to a peer before it is durable. Remote
subscribers read an :class:`EventStream` (:meth:`EventHub.stream`): a bounded queue; a
subscriber that falls behind loses the *oldest* events and next reads a :class:`Missed`
saying how many. Memory stays bounded however slow the reader.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

__all__ = (
    "DEFAULT_STREAM_SIZE",
    "KINDS",
    "BalanceChanged",
    "Blacklisted",
    "CheckpointSealed",
    "Event",
    "EventHub",
    "EventStream",
    "Keeper",
    "Missed",
    "PeerStateChanged",
    "PropertiesChanged",
    "PullProgress",
    "ReceiptSigned",
    "Subscription",
    "TaskFinished",
    "TaskStarted",
)

log = logging.getLogger(__name__)

DEFAULT_STREAM_SIZE = 256
"""Events a stream holds for a reader that has not caught up."""


class Event:
    """Base of every event: a ``kind`` and its JSON form."""

    __slots__ = ()
    kind: ClassVar[str]

    def as_json(self) -> dict[str, object]:
        """``{"kind": ..., <fields>}`` (JSON data)."""
        out: dict[str, object] = {"kind": self.kind}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = dict(value) if isinstance(value, Mapping) else value
        return out


@dataclass(frozen=True, slots=True)
class PeerStateChanged(Event):
    """A member's state changed in this node's view of the mesh."""

    kind: ClassVar[str] = "peer.state"
    node_id: str
    state: str
    """``alive``, ``suspect``, ``dead`` or ``forgotten`` (evicted from the view)."""
    previous: str | None
    """The state before; None for a member this node had not known."""


@dataclass(frozen=True, slots=True)
class TaskStarted(Event):
    """A task this node offered was granted to ``worker``."""

    kind: ClassVar[str] = "task.started"
    task_id: str
    worker: str


@dataclass(frozen=True, slots=True)
class TaskFinished(Event):
    """A task this node offered ended in ``state`` (``done``, ``failed``, ``cancelled``)."""

    kind: ClassVar[str] = "task.finished"
    task_id: str
    state: str


@dataclass(frozen=True, slots=True)
class ReceiptSigned(Event):
    """A task receipt was signed here, as its ``origin`` or its ``worker`` (the role)."""

    kind: ClassVar[str] = "receipt.signed"
    role: str
    """``origin`` or ``worker``: which signature this node made."""
    body: Mapping[str, object]
    """The receipt body (see :mod:`edgecoder.tasks.receipts`)."""
    origin_sig: str
    worker_sig: str
    """Hex signatures; ``worker_sig`` is empty until the worker has countersigned."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", MappingProxyType(dict(self.body)))


@dataclass(frozen=True, slots=True)
class PullProgress(Event):
    """A model download (a pull job) moved on, or ended."""

    kind: ClassVar[str] = "pull.progress"
    job_id: int
    model: str
    state: str
    """``running``, ``done`` or ``failed``."""
    status: str
    completed: int
    total: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class PropertiesChanged(Event):
    """Properties of the node (the D-Bus ones, by name) that now have new values."""

    kind: ClassVar[str] = "properties.changed"
    changed: Mapping[str, object]

    def __post_init__(self) -> None:
        object.__setattr__(self, "changed", MappingProxyType(dict(self.changed)))


@dataclass(frozen=True, slots=True)
class BalanceChanged(Event):
    """This node's credits (mc) changed: an entry was appended or a reservation made."""

    kind: ClassVar[str] = "ledger.balance"
    balance: int
    held: int
    available: int


@dataclass(frozen=True, slots=True)
class CheckpointSealed(Event):
    """A newer checkpoint of the economy was taken here (sealed by ``author``)."""

    kind: ClassVar[str] = "ledger.checkpoint"
    epoch: int
    hash: str
    root: str
    author: str
    includes_me: bool
    """Whether it lists this node's head (an inclusion proof is then kept)."""


@dataclass(frozen=True, slots=True)
class Blacklisted(Event):
    """A blacklist entry, its evidence verified, was accepted: ``accused`` is shut out."""

    kind: ClassVar[str] = "peer.blacklisted"
    accused: str
    author: str
    """Who wrote the entry (this node, for its own accusations)."""
    reason: str


@dataclass(frozen=True, slots=True)
class Missed(Event):
    """Not published: what a stream reads in place of ``count`` events it had to drop."""

    kind: ClassVar[str] = "missed"
    count: int


KINDS = frozenset(
    cls.kind
    for cls in (
        PeerStateChanged,
        TaskStarted,
        TaskFinished,
        ReceiptSigned,
        PullProgress,
        PropertiesChanged,
        BalanceChanged,
        Blacklisted,
        CheckpointSealed,
    )
)
"""Every kind that is published (:class:`Missed` is not: streams make it)."""

Callback = Callable[[Event], None]
Keeper = Callable[[Event], Awaitable[None]]


class Subscription:
    """A local subscriber's handle; :meth:`close` unsubscribes (more than once is fine)."""

    __slots__ = ("_hub", "callback", "failures", "kinds")

    def __init__(self, hub: EventHub, callback: Callback, kinds: frozenset[str] | None) -> None:
        self._hub: EventHub | None = hub
        self.callback = callback
        self.kinds = kinds
        self.failures = 0

    @property
    def active(self) -> bool:
        """Whether it is still subscribed."""
        return self._hub is not None

    def close(self) -> None:
        """Stop receiving events."""
        if self._hub is not None:
            self._hub._remove(self)
            self._hub = None


class EventHub:
    """Where events are published and whence subscribers get them."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._keepers: list[tuple[frozenset[str], Keeper]] = []
        self._streams: set[EventStream] = set()
        self._closed = False

    @property
    def subscriber_count(self) -> int:
        """Local subscribers and open streams."""
        return len(self._subscriptions)

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber of its kind, now; never raises."""
        for sub in tuple(self._subscriptions):
            if not sub.active or (sub.kinds is not None and event.kind not in sub.kinds):
                continue
            try:
                sub.callback(event)
            except Exception:
                sub.failures += 1
                if sub.failures == 1:
                    log.exception("event subscriber %r failed on %s (further failures of it "
                                  "are not logged)", sub.callback, event.kind)  # fmt: skip

    def subscribe(self, callback: Callback, kinds: Iterable[str] | None = None) -> Subscription:
        """Call ``callback(event)`` for every event of ``kinds`` (None: every kind).

        The callback runs inside :meth:`publish`: it must not block, and should not await.

        :raises ValueError: an unknown kind.
        """
        sub = Subscription(self, callback, _kinds(kinds))
        self._subscriptions.append(sub)
        return sub

    def keep(self, keeper: Keeper, kinds: Iterable[str]) -> None:
        """Have ``keeper`` make every event of ``kinds`` durable when it is recorded.

        :raises ValueError: an unknown kind, or none.
        """
        chosen = _kinds(kinds)
        if not chosen:
            raise ValueError("a keeper keeps at least one kind of event")
        self._keepers.append((chosen, keeper))

    async def record(self, event: Event) -> None:
        """Have every keeper of ``event``'s kind keep it, one after the other, then
        publish it to the subscribers.

        :raises Exception: the first keeper's failure (the event is then not published:
            what was not kept did not happen).
        """
        for kinds, keeper in tuple(self._keepers):
            if event.kind in kinds:
                await keeper(event)
        self.publish(event)

    def stream(
        self, kinds: Iterable[str] | None = None, maxsize: int = DEFAULT_STREAM_SIZE
    ) -> EventStream:
        """An async iterator over the events of ``kinds`` from now on, holding at most
        ``maxsize`` unread (then the oldest go, and a :class:`Missed` says how many).

        Close it (``async with`` or :meth:`EventStream.close`) when done reading.

        :raises ValueError: an unknown kind, or ``maxsize`` below 1.
        """
        stream = EventStream(self, _kinds(kinds), maxsize)
        if self._closed:
            stream.close()
        else:
            self._streams.add(stream)
        return stream

    def close(self) -> None:
        """End every stream (its reader gets what is queued, then the end); for shutdown.

        Local subscribers stay; streams opened later end at once.
        """
        self._closed = True
        for stream in list(self._streams):
            stream.close()

    def _remove(self, sub: Subscription) -> None:
        self._subscriptions.remove(sub)

    def _forget(self, stream: EventStream) -> None:
        self._streams.discard(stream)


def _kinds(kinds: Iterable[str] | None) -> frozenset[str] | None:
    if kinds is None:
        return None
    chosen = frozenset(kinds)
    unknown = chosen - KINDS
    if unknown:
        raise ValueError(f"unknown event kind(s): {', '.join(sorted(unknown))}")
    return chosen


class EventStream:
    """A remote subscriber's bounded queue of events (see :meth:`EventHub.stream`)."""

    def __init__(self, hub: EventHub, kinds: frozenset[str] | None, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("an event stream holds at least one event")
        self.maxsize = maxsize
        self.missed = 0
        """Events dropped over the stream's life."""
        self._hub = hub
        self._queue: deque[Event] = deque()
        self._unreported = 0
        self._closed = False
        self._ready = asyncio.Event()
        self._subscription = hub.subscribe(self._put, kinds)

    def _put(self, event: Event) -> None:
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self._unreported += 1
            self.missed += 1
        self._queue.append(event)
        self._ready.set()

    @property
    def pending(self) -> int:
        """Events queued and not yet read."""
        return len(self._queue)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._unreported:
                # Everything dropped was older than what is queued: the report comes first.
                count, self._unreported = self._unreported, 0
                return Missed(count)
            if self._queue:
                return self._queue.popleft()
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()

    def close(self) -> None:
        """Unsubscribe; what is queued can still be read, then the stream ends."""
        self._closed = True
        self._subscription.close()
        self._hub._forget(self)
        self._ready.set()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
